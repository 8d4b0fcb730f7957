// The syslog sink with a stand-in for util-linux logger (a shell script that
// appends what it reads, and its arguments, to a file): the PRI of each line,
// the arguments logger gets, one line per message, and a new logger when the
// old one exits (syslogd restarted). The real logger and a real socket are
// tested in test/proxy-process.test.ts.

import test from 'ava';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SyslogSink } from './syslog-sink.js';

function fakeLogger(script: string): { bin: string; out: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'syslog-sink-'));
  const out = path.join(dir, 'out');
  const bin = path.join(dir, 'logger');
  writeFileSync(bin, `#!/bin/sh\necho "ARGS $*" >> ${out}\n${script.replaceAll('OUT', out)}\n`);
  chmodSync(bin, 0o755);
  return { bin, out, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function until(file: string, count: number): Promise<string[]> {
  for (let i = 0; i < 200; i++) {
    const lines = (() => {
      try {
        return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
      } catch {
        return [];
      }
    })();
    if (lines.length >= count) return lines;
    await sleep(10);
  }
  throw new Error(`${file}: fewer than ${count} lines`);
}

test('one <PRI>message line per message; facility and severity as syslog(3) numbers them', async (t) => {
  const fake = fakeLogger('cat >> OUT');
  t.teardown(fake.cleanup);
  const sink = new SyslogSink({ facility: 'LOG_MAIL', socketPath: '/run/test.sock', pid: 4242, loggerBin: fake.bin });
  sink.write('info', "LOGIN: 'alice' (127.0.0.1:1) on new sd [9]");
  sink.write('err', 'server said\r\nBYE');
  sink.setFacility('LOG_LOCAL7');
  sink.write('debug', 'x');
  await sink.close();
  t.deepEqual(await until(fake.out, 4), [
    'ARGS --prio-prefix --socket /run/test.sock --socket-errors=on -t in.imapproxyd --id=4242 --size 8192',
    "<22>LOGIN: 'alice' (127.0.0.1:1) on new sd [9]",
    '<19>server said\\r\\nBYE',
    '<191>x',
  ]);
});

test('a logger that exits is replaced; messages written meanwhile are not lost', async (t) => {
  // each stand-in takes one line and exits, like logger when syslogd goes away
  const fake = fakeLogger('head -n 1 >> OUT');
  t.teardown(fake.cleanup);
  const problems: string[] = [];
  const sink = new SyslogSink({ facility: 'LOG_DAEMON', loggerBin: fake.bin, onProblem: (m) => problems.push(m) });
  sink.write('notice', 'one');
  await until(fake.out, 2);
  await sleep(100);
  sink.write('notice', 'two');
  await until(fake.out, 4);
  await sink.close();
  const lines = readFileSync(fake.out, 'utf8').split('\n').filter((l) => !l.startsWith('ARGS') && l !== '');
  t.deepEqual(lines, ['<29>one', '<29>two']);
  t.true(problems.length >= 1 && problems.every((p) => p.startsWith('syslog: ') && p.endsWith('; retrying')), problems.join('\n'));
});

test('no logger at all: reported, and the daemon goes on', async (t) => {
  const problems: string[] = [];
  const sink = new SyslogSink({ facility: 'LOG_MAIL', loggerBin: '/nonexistent/logger', onProblem: (m) => problems.push(m) });
  sink.write('info', 'lost');
  for (let i = 0; i < 100 && problems.length === 0; i++) await sleep(10);
  await sink.close();
  t.regex(problems[0] ?? '', /^cannot start logger for syslog: spawn \/nonexistent\/logger ENOENT$/);
});

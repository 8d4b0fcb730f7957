// bin/pimpstat as a program: -c against the C original, --json, and every error case.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scaled } from './helpers/wait.js';
import {
  C_FIELDS,
  C_LAYOUT_SIZE,
  EXT_FIELD_NAMES,
  StatsFileWriter,
  StatsRegistry,
  encodeStats,
} from '@imapproxy/shared';

const BIN = fileURLToPath(new URL('../../bin/pimpstat', import.meta.url));
const C_PIMPSTAT = '/usr/sbin/pimpstat';
const haveC = fs.existsSync(C_PIMPSTAT);
const cTest = haveC ? test : test.skip;
if (!haveC) console.warn(`pimpstat: ${C_PIMPSTAT} not installed; comparisons with the C original skipped`);

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function ours(args: string[]): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    timeout: scaled(20_000),
    env: { ...process.env, LANG: 'C', LC_ALL: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function theirs(args: string[]): Run {
  const r = spawnSync(C_PIMPSTAT, args, { encoding: 'utf8', timeout: scaled(20_000) });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pimpstat-test-'));
}

function writeConf(dir: string, lines: string[]): string {
  const conf = path.join(dir, 'imapproxy.conf');
  fs.writeFileSync(conf, [...lines, ''].join('\n'));
  return conf;
}

function standardConf(dir: string, statFile: string, extra: string[] = []): string {
  return writeConf(dir, [
    'server_port 143',
    'listen_port 1143',
    'cache_size 10',
    'proc_username nobody',
    'proc_groupname nogroup',
    `protocol_log_filename ${path.join(dir, 'p.log')}`,
    `stat_filename ${statFile}`,
    ...extra,
  ]);
}

/** A live-written stats file whose counters all differ; returns its path. */
function knownStatsFile(dir: string): string {
  const reg = new StatsRegistry(1700000000);
  const times = (n: number, f: () => void): void => {
    for (let i = 0; i < n; i++) f();
  };
  times(23, () => reg.clientOpened());
  times(6, () => reg.clientClosed());
  times(12, () => reg.activeChanged(1));
  times(3, () => reg.activeChanged(-1));
  times(15, () => reg.cachedChanged(1));
  times(11, () => reg.cachedChanged(-1));
  times(5, () => reg.loginSucceeded('new'));
  times(14, () => reg.loginSucceeded('reused'));
  times(31, () => reg.selectCommand(true));
  times(8, () => reg.selectCommand(false));
  times(2, () => reg.loginFailed());
  times(3, () => reg.serverConnectFailed());
  times(4, () => reg.evicted());
  times(5, () => reg.expired());
  times(6, () => reg.invalidated());
  times(7, () => reg.resync(true));
  times(8, () => reg.resync(false));
  reg.resetCounters(1700000500);
  // After the reset: totals count again from 0, peaks from 0.
  times(3, () => reg.clientOpened());
  times(2, () => reg.loginSucceeded('reused'));
  reg.loginSucceeded('new');
  const file = path.join(dir, 'pimpstats');
  const writer = new StatsFileWriter(reg, file, { now: () => 1700000600_000 });
  writer.close();
  return file;
}

const KNOWN_C_TEXT = [
  ' 20 Current Client Connections',
  ' 20 Peak Client Connections',
  ' 9 In Use Connections',
  ' 0 Peak In Use Connections',
  ' 4 Retained Server Connections',
  ' 0 Peak Retained Server Connections',
  ' 3 Total Client Connections',
  ' 3 Total Client Logins',
  ' 2 Total Reused Connections',
  ' 1 Total Created Connections',
  ' 31 Cache Hits',
  ' 8 Cache Misses',
  '',
].join('\n');

test('-c prints the twelve lines in the original order and format', (t) => {
  const dir = tempDir();
  const r = ours(['-c', '-f', standardConf(dir, knownStatsFile(dir))]);
  t.is(r.stderr, '');
  t.is(r.status, 0);
  t.is(r.stdout, KNOWN_C_TEXT);
});

cTest('-c is byte for byte the C pimpstat -c, on our file', (t) => {
  const dir = tempDir();
  const conf = standardConf(dir, knownStatsFile(dir));
  const c = theirs(['-c', '-f', conf]);
  t.is(c.status, 0);
  t.is(c.stdout, KNOWN_C_TEXT);
  t.is(ours(['-c', '-f', conf]).stdout, c.stdout);
});

cTest('-c is byte for byte the C pimpstat -c, on a 72-byte file of the C daemon with wrapped counters', (t) => {
  const dir = tempDir();
  const statFile = path.join(dir, 'pimpstats');
  const image = Buffer.alloc(C_LAYOUT_SIZE);
  let value = 1;
  for (const spec of Object.values(C_FIELDS)) {
    if (spec.type === 'u32') image.writeUInt32LE((value++ * 1000003) >>> 0, spec.offset);
  }
  image.writeUInt32LE(0xffffffff, C_FIELDS.retainedServerConnections.offset); // the C's drift
  image.writeUInt32LE(0x80000000, C_FIELDS.totalClientLogins.offset);
  fs.writeFileSync(statFile, image);
  const conf = standardConf(dir, statFile);
  const c = theirs(['-c', '-f', conf]);
  const r = ours(['-c', '-f', conf]);
  t.is(r.status, 0);
  t.is(r.stdout, c.stdout);
  t.true(r.stdout.includes(' -1 Retained Server Connections\n'));
  t.true(r.stdout.includes(' -2147483648 Total Client Logins\n'));
});

test('--json has every field of the file, extension block included', (t) => {
  const dir = tempDir();
  const statFile = knownStatsFile(dir);
  const r = ours(['--json', '-f', standardConf(dir, statFile)]);
  t.is(r.stderr, '');
  t.is(r.status, 0);
  const json = JSON.parse(r.stdout) as Record<string, unknown> & { extension: Record<string, number> };
  const { extension, ...top } = json;
  t.deepEqual(top, {
    statFile,
    layoutVersion: 1,
    startTime: 1700000000,
    countTime: 1700000500,
    currentClientConnections: 20,
    peakClientConnections: 20,
    inUseServerConnections: 9,
    peakInUseServerConnections: 0,
    retainedServerConnections: 4,
    peakRetainedServerConnections: 0,
    totalClientConnectionsAccepted: 3,
    totalClientLogins: 3,
    totalServerConnectionsCreated: 1,
    totalServerConnectionsReused: 2,
    totalSelectCommands: 39,
    selectCacheHits: 31,
    selectCacheMisses: 8,
  });
  t.deepEqual(Object.keys(extension).sort(), ['generation', ...EXT_FIELD_NAMES].sort());
  t.deepEqual(
    { ...extension, writerPid: 0 },
    {
      generation: 4, // constructor flush (2) + close() flush (4)
      clientConnectionsAccepted: 3,
      clientLogins: 3,
      serverConnectionsCreated: 1,
      serverConnectionsReused: 2,
      selectCommands: 39,
      selectCacheHits: 31,
      selectCacheMisses: 8,
      loginFailures: 2,
      serverConnectFailures: 3,
      evictions: 4,
      expirations: 5,
      invalidations: 6,
      resyncsOk: 7,
      resyncsFailed: 8,
      gaugeUnderflows: 0,
      flushedAtMs: 1700000600_000,
      writerPid: 0,
    },
  );
  t.true(extension.writerPid! > 0);
});

test('--json on a 72-byte C file: layoutVersion and extension are null', (t) => {
  const dir = tempDir();
  const statFile = path.join(dir, 'pimpstats');
  const reg = new StatsRegistry(1700000000);
  reg.clientOpened();
  fs.writeFileSync(statFile, encodeStats({ ...reg.snapshot(), extension: null }));
  const json = JSON.parse(ours(['--json', '-f', standardConf(dir, statFile)]).stdout) as Record<string, unknown>;
  t.is(json.layoutVersion, null);
  t.is(json.extension, null);
  t.is(json.currentClientConnections, 1);
  t.is(json.totalClientConnectionsAccepted, 1);
});

/** One line on stderr, nothing on stdout, no stack trace. */
function oneLineError(t: import('ava').ExecutionContext, r: Run, status: number, message: RegExp): void {
  t.is(r.status, status, r.stderr);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^pimpstat: [^\n]+\n$/);
  t.notRegex(r.stderr, /\n\s+at /);
  t.regex(r.stderr, message);
}

test('error: missing stats file names it and where it came from (exit 1)', (t) => {
  const dir = tempDir();
  const statFile = path.join(dir, 'nope');
  const conf = standardConf(dir, statFile);
  oneLineError(
    t,
    ours(['-c', '-f', conf]),
    1,
    new RegExp(
      `^pimpstat: cannot open stats file ${statFile}: no such file \\(is imapproxyd running with this stat_filename\\?\\) \\[stat_filename at ${conf}:7\\]\\n$`,
    ),
  );
  // The C original says it on stdout, also with status 1.
  if (haveC) t.is(theirs(['-c', '-f', conf]).stdout, `pimpstat: open() failed for '${statFile}': No such file or directory -- Exiting.\n`);
});

test('error: unreadable stats file (a directory) (exit 1)', (t) => {
  const dir = tempDir();
  oneLineError(t, ours(['--json', '-f', standardConf(dir, dir)]), 1, new RegExp(`cannot read stats file ${dir}: `));
});

test('error: wrong magic, unknown version, too short (exit 1)', (t) => {
  const dir = tempDir();
  const statFile = path.join(dir, 'pimpstats');
  const conf = standardConf(dir, statFile);
  fs.writeFileSync(statFile, Buffer.alloc(512, 0x41));
  oneLineError(
    t,
    ours(['-c', '-f', conf]),
    1,
    /^pimpstat: \S+: not an imapproxy stats file \(magic 0x41414141 at offset 72, expected 0x494d5058\); check that stat_filename points at imapproxyd's stats file \[stat_filename at \S+:7\]\n$/,
  );
  const v7 = encodeStats(new StatsRegistry(1).snapshot());
  v7.writeUInt32LE(7, 76);
  fs.writeFileSync(statFile, v7);
  oneLineError(t, ours(['-c', '-f', conf]), 1, /unknown stats layout version 7 \(this build reads version 1\)/);
  // The C pimpstat reads zeros past the end of a short file; we refuse it.
  fs.writeFileSync(statFile, Buffer.alloc(10));
  oneLineError(t, ours(['-c', '-f', conf]), 1, /too short for a stats file \(10 bytes, need at least 72\)/);
});

test('error: config without stat_filename falls back to the default path and says so', (t) => {
  const dir = tempDir();
  const conf = writeConf(dir, ['server_port 143']);
  const r = ours(['-c', '-f', conf]);
  if (fs.existsSync('/run/imapproxy/pimpstats')) {
    t.pass('a daemon is running on this machine; the default file exists');
    return;
  }
  oneLineError(
    t,
    r,
    1,
    new RegExp(`\\[the default stat_filename; ${conf} has no stat_filename line\\]\\n$`),
  );
  // The C original passes a NULL name to open(): "open() failed for '(null)': Bad address".
  if (haveC) t.regex(theirs(['-c', '-f', conf]).stdout, /open\(\) failed for '\(null\)'/);
});

test('error: config file missing or invalid: one line naming file (and line), exit 78', (t) => {
  const dir = tempDir();
  const missing = path.join(dir, 'missing.conf');
  oneLineError(
    t,
    ours(['-c', '-f', missing]),
    78,
    new RegExp(`^pimpstat: ${missing}: cannot read config file: no such file or directory \\(ENOENT\\); check the path and that this user may read it\\n$`),
  );
  const bad = writeConf(dir, ['stat_filename /tmp/x', 'cache_size lots']);
  oneLineError(t, ours(['-c', '-f', bad]), 78, new RegExp(`^pimpstat: ${bad}:2: option 'cache_size': `));
  // The C original logs config errors to syslog only and exits 1 with nothing on the terminal.
  if (haveC) {
    const c = theirs(['-c', '-f', missing]);
    t.is(c.status, 1);
    t.is(c.stdout + c.stderr, '');
  }
});

test('error: bad command line, -c with --json, dashboard without a terminal: exit 64', (t) => {
  oneLineError(t, ours(['--bogus']), 64, /^pimpstat: Unknown argument: bogus \(see pimpstat --help\)\n$/);
  oneLineError(t, ours(['-c', '--json']), 64, /mutually exclusive/);
  const dir = tempDir();
  const conf = standardConf(dir, knownStatsFile(dir));
  oneLineError(
    t,
    ours(['-f', conf]),
    64,
    /^pimpstat: the dashboard needs a terminal; use -c or --json for output to a pipe or file\n$/,
  );
});

test('--help and --version', (t) => {
  const help = ours(['--help']);
  t.is(help.status, 0);
  t.regex(help.stdout, /^Usage: pimpstat \[-f config\] \[-c \| --json\]/);
  t.regex(help.stdout, /default: "\/etc\/imapproxy\.conf"/);
  const version = ours(['--version']);
  t.is(version.status, 0);
  t.regex(version.stdout, /^\d+\.\d+\.\d+\n$/);
});

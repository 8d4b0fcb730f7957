import test from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImapProxyError } from '../errors.js';
import { decodeStats, encodeStats } from './codec.js';
import { StatsRegistry } from './registry.js';
import { readConsistent, readStatsFile, type StatsSource } from './reader.js';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'imapproxy-stats-'));
}

/** An image whose counters all equal `n` (so a torn mix is visible) with generation `gen`. */
function image(n: number, gen: number): Buffer {
  const reg = new StatsRegistry(1700000000);
  for (let i = 0; i < n; i++) reg.clientOpened();
  const snap = reg.snapshot();
  snap.extension!.generation = gen;
  return encodeStats(snap);
}

/** A scripted file: each readImage/readGeneration call returns the next scripted value. */
function scripted(images: Buffer[], generations: Array<number | null>): StatsSource & { calls: number } {
  let i = 0;
  let g = 0;
  return {
    name: '/scripted',
    calls: 0,
    readImage() {
      this.calls++;
      return images[Math.min(i++, images.length - 1)]!;
    },
    readGeneration() {
      return generations[Math.min(g++, generations.length - 1)]!;
    },
  };
}

const fast = { retryDelayMs: 0 };

test('consistent on the first read: even generation that did not move', (t) => {
  const src = scripted([image(3, 4)], [4]);
  t.is(readConsistent(src, fast).currentClientConnections, 3);
  t.is(src.calls, 1);
});

test('odd generation (flush in progress) is retried', (t) => {
  const src = scripted([image(3, 5), image(4, 6)], [5, 6]);
  const s = readConsistent(src, fast);
  t.is(s.currentClientConnections, 4);
  t.is(s.extension?.generation, 6);
  t.is(src.calls, 2);
});

test('generation moved during the read (torn snapshot) is retried', (t) => {
  // The image still says generation 4 but a flush started meanwhile: its bytes may be mixed.
  const torn = Buffer.concat([image(9, 4).subarray(0, 40), image(3, 4).subarray(40)]);
  const src = scripted([torn, image(9, 6)], [5, 6]);
  const s = readConsistent(src, fast);
  t.is(s.currentClientConnections, 9);
  t.is(s.totalClientConnectionsAccepted, 9);
  t.is(src.calls, 2);
});

test('writer died mid-flush: odd generation but a stable file is accepted on the second read', (t) => {
  const src = scripted([image(7, 9)], [9]);
  const s = readConsistent(src, fast);
  t.is(s.currentClientConnections, 7);
  t.is(src.calls, 2);
});

test('a file that never settles: STATS_FILE error after the attempts', (t) => {
  let n = 0;
  const src: StatsSource = {
    name: '/busy',
    readImage: () => image(n++ % 5, 2 * n),
    readGeneration: () => 2 * n + 1,
  };
  const err = t.throws(() => readConsistent(src, { attempts: 4, retryDelayMs: 0 }), {
    instanceOf: ImapProxyError,
  });
  t.is(err?.code, 'IMAPPROXY_ERR_STATS_FILE');
  t.is(err?.message, 'stats file /busy kept changing while being read (4 torn reads); try again');
});

test('C-only file: two identical reads, or the last read if it keeps changing', (t) => {
  const c = (n: number): Buffer => image(n, 0).subarray(0, 72);
  const stable = scripted([c(2)], [null]);
  t.is(readConsistent(stable, fast).currentClientConnections, 2);
  t.is(stable.calls, 2);
  let n = 0;
  const moving: StatsSource = { name: '/c', readImage: () => c(n++), readGeneration: () => null };
  const s = readConsistent(moving, { attempts: 3, retryDelayMs: 0 });
  t.is(s.currentClientConnections, 2);
  t.is(s.layoutVersion, null);
});

test('a file caught between truncate and first write is retried', (t) => {
  const src = scripted([Buffer.alloc(0), image(1, 2)], [2]);
  t.is(readConsistent(src, fast).currentClientConnections, 1);
});

test('readStatsFile: our file, and a 72-byte C file', (t) => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'ours'), image(5, 10));
  const ours = readStatsFile(path.join(dir, 'ours'));
  t.is(ours.layoutVersion, 1);
  t.is(ours.extension?.clientConnectionsAccepted, 5);
  fs.writeFileSync(path.join(dir, 'c'), image(5, 10).subarray(0, 72));
  const c = readStatsFile(path.join(dir, 'c'));
  t.is(c.layoutVersion, null);
  t.is(c.extension, null);
  t.is(c.peakClientConnections, 5);
});

test('readStatsFile errors: missing, directory, short, wrong magic, unknown version', (t) => {
  const dir = tempDir();
  const check = (file: string, code: string, message: RegExp): void => {
    const err = t.throws(() => readStatsFile(file, fast), { instanceOf: ImapProxyError });
    t.is(err?.code, code as ImapProxyError['code']);
    t.regex(err?.message ?? '', message);
  };
  const missing = path.join(dir, 'missing');
  check(missing, 'IMAPPROXY_ERR_STATS_FILE', new RegExp(`^cannot open stats file ${missing}: no such file`));
  check(dir, 'IMAPPROXY_ERR_STATS_FILE', new RegExp(`^cannot read stats file ${dir}: `));
  const short = path.join(dir, 'short');
  fs.writeFileSync(short, Buffer.alloc(10));
  check(short, 'IMAPPROXY_ERR_STATS_LAYOUT', new RegExp(`^${short}: too short`));
  const magic = path.join(dir, 'magic');
  fs.writeFileSync(magic, Buffer.alloc(512, 1));
  check(magic, 'IMAPPROXY_ERR_STATS_LAYOUT', /not an imapproxy stats file \(magic 0x01010101/);
  const v9 = path.join(dir, 'v9');
  const buf = image(1, 2);
  buf.writeUInt32LE(9, 76);
  fs.writeFileSync(v9, buf);
  check(v9, 'IMAPPROXY_ERR_STATS_LAYOUT', /unknown stats layout version 9/);
});

// A real writer process flushing hundreds of times a second while we read: every snapshot must be
// whole (all counters equal), which only the seqlock guarantees.
test('no torn snapshot while another process flushes continuously', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'pimpstats');
  const writerModule = new URL('./writer.js', import.meta.url).href;
  const registryModule = new URL('./registry.js', import.meta.url).href;
  const script = `
    const { StatsRegistry } = await import(${JSON.stringify(registryModule)});
    const { StatsFileWriter } = await import(${JSON.stringify(writerModule)});
    const reg = new StatsRegistry(1700000000);
    const w = new StatsFileWriter(reg, ${JSON.stringify(file)});
    process.stdout.write('ready\\n');
    const pause = new Int32Array(new SharedArrayBuffer(4));
    const end = Date.now() + 1500;
    let i = 0;
    while (Date.now() < end) {
      reg.clientOpened();
      w.flush();
      // Hundreds of flushes a second (the daemon does one): a pause every few flushes so
      // readers also get windows between them.
      if (++i % 4 === 0) Atomics.wait(pause, 0, 0, 1);
    }
    w.close();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: path.dirname(fileURLToPath(import.meta.url)),
  });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let done = false;
  void exited.then(() => (done = true));
  let reads = 0;
  let rawTorn = 0;
  let rawOdd = 0;
  let bad = 0;
  let last = 0;
  while (!done) {
    // Raw reads without the protocol, only to show the race is real on this machine.
    const raw = decodeStats(fs.readFileSync(file));
    if (raw.currentClientConnections !== raw.extension?.clientConnectionsAccepted) rawTorn++;
    if ((raw.extension?.generation ?? 0) % 2 === 1) rawOdd++;
    const s = readStatsFile(file, { attempts: 50, retryDelayMs: 1 });
    reads++;
    const n = s.currentClientConnections;
    if (
      s.peakClientConnections !== n ||
      s.totalClientConnectionsAccepted !== n ||
      s.extension?.clientConnectionsAccepted !== n ||
      n < last
    ) {
      bad++;
    }
    last = n;
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.log(`${reads} protocol reads, ${rawTorn} torn and ${rawOdd} mid-flush raw reads seen, final count ${last}`);
  t.true(reads > 50);
  t.true(last > 0);
  t.is(bad, 0);
});

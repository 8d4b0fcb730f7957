import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImapProxyError } from '../errors.js';
import { decodeStats } from './codec.js';
import { StatsRegistry } from './registry.js';
import { StatsFileWriter } from './writer.js';

function tempFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imapproxy-stats-'));
  return path.join(dir, 'pimpstats');
}

test('creates a 512-byte file, mode 0600, with the counters at once', (t) => {
  const file = tempFile();
  fs.writeFileSync(file, Buffer.alloc(4000, 0xaa), { mode: 0o644 }); // old junk is replaced
  const reg = new StatsRegistry(1700000000);
  reg.clientOpened();
  const writer = new StatsFileWriter(reg, file, { now: () => 5000 });
  const st = fs.statSync(file);
  t.is(st.size, 512);
  t.is(st.mode & 0o777, 0o600);
  const s = decodeStats(fs.readFileSync(file));
  t.is(s.startTime, 1700000000);
  t.is(s.currentClientConnections, 1);
  t.is(s.extension?.generation, 2);
  t.is(s.extension?.flushedAtMs, 5000);
  writer.close();
});

test('flush: generation moves by 2 and is even on disk afterwards', (t) => {
  const file = tempFile();
  const reg = new StatsRegistry(1);
  let now = 1000;
  const writer = new StatsFileWriter(reg, file, { now: () => now });
  const gens: number[] = [];
  for (let i = 0; i < 3; i++) {
    now += 1000;
    reg.loginSucceeded('new');
    writer.flush();
    const s = decodeStats(fs.readFileSync(file));
    gens.push(s.extension!.generation);
    t.is(s.totalServerConnectionsCreated, i + 1);
    t.is(s.extension?.flushedAtMs, now);
  }
  t.deepEqual(gens, [4, 6, 8]);
  t.is(reg.snapshot().extension?.generation, 8);
  writer.close();
});

test('start(): writes only on change or heartbeat; timer is unref()d', async (t) => {
  const file = tempFile();
  const reg = new StatsRegistry(1);
  let now = 0;
  const writer = new StatsFileWriter(reg, file, { now: () => now, heartbeatMs: 10_000 });
  const gen = (): number => decodeStats(fs.readFileSync(file)).extension!.generation;
  t.is(gen(), 2);
  writer.start(20);
  await sleep(120);
  t.is(gen(), 2, 'nothing changed, heartbeat not due: no write');
  reg.clientOpened();
  await sleep(120);
  t.is(gen(), 4, 'one change: exactly one write');
  t.is(decodeStats(fs.readFileSync(file)).currentClientConnections, 1);
  now = 10_000;
  await sleep(120);
  t.is(gen(), 6, 'heartbeat due: one write although nothing changed');
  writer.close();
  t.is(gen(), 8, 'close() flushes a last time');
});

test('close() twice is harmless; flush after close throws STATS_FILE', (t) => {
  const file = tempFile();
  const writer = new StatsFileWriter(new StatsRegistry(1), file);
  writer.close();
  writer.close();
  const err = t.throws(() => writer.flush(), { instanceOf: ImapProxyError });
  t.is(err?.code, 'IMAPPROXY_ERR_STATS_FILE');
  t.true(err?.message.includes(file));
});

test('cannot create: STATS_FILE error naming the path', (t) => {
  const file = '/nonexistent-dir-imapproxy/pimpstats';
  const err = t.throws(() => new StatsFileWriter(new StatsRegistry(1), file), {
    instanceOf: ImapProxyError,
  });
  t.is(err?.code, 'IMAPPROXY_ERR_STATS_FILE');
  t.regex(err?.message ?? '', /^cannot create stats file \/nonexistent-dir-imapproxy\/pimpstats: ENOENT/);
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

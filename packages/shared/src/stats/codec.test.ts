import test from 'ava';
import { ImapProxyError } from '../errors.js';
import { decodeStats, encodeStats } from './codec.js';
import { C_FIELD_NAMES, EXT_FIELD_NAMES, type StatsSnapshot } from './layout.js';

/** Every field a different value; u64 ones above 2^32 to prove they are not truncated. */
function distinctSnapshot(): StatsSnapshot {
  const s = { extension: { generation: 42 } } as StatsSnapshot;
  s.startTime = 1700000000;
  s.countTime = 1700003600;
  C_FIELD_NAMES.slice(2).forEach((name, i) => {
    s[name] = 101 + i * 7; // 101, 108, 115, ...
  });
  const ext = s.extension!;
  EXT_FIELD_NAMES.forEach((name, i) => {
    ext[name] = 2 ** 32 + 1000 * (i + 1);
  });
  return s;
}

test('round trip: full layout keeps every field', (t) => {
  const snap = distinctSnapshot();
  const buf = encodeStats(snap);
  t.is(buf.length, 512);
  const back = decodeStats(buf);
  t.is(back.layoutVersion, 1);
  const { layoutVersion, ...rest } = back;
  t.deepEqual(rest, snap);
});

test('round trip: C-only layout', (t) => {
  const snap = { ...distinctSnapshot(), extension: null };
  const buf = encodeStats(snap);
  t.is(buf.length, 72);
  t.deepEqual(decodeStats(buf), { ...snap, layoutVersion: null });
});

test('u32 fields keep the C wrap-around (mod 2^32)', (t) => {
  const snap = { ...distinctSnapshot(), extension: null };
  snap.totalClientLogins = 2 ** 32 + 5;
  snap.currentClientConnections = -1;
  const back = decodeStats(encodeStats(snap));
  t.is(back.totalClientLogins, 5);
  t.is(back.currentClientConnections, 4294967295);
});

function layoutError(t: import('ava').ExecutionContext, buf: Buffer, fragment: RegExp): void {
  const err = t.throws(() => decodeStats(buf, '/var/run/pimpstats'), {
    instanceOf: ImapProxyError,
  });
  t.is(err?.code, 'IMAPPROXY_ERR_STATS_LAYOUT');
  t.regex(err?.message ?? '', /^\/var\/run\/pimpstats: /);
  t.regex(err?.message ?? '', fragment);
}

test('decode errors: too short, wrong magic, unknown version, truncated extension', (t) => {
  layoutError(t, Buffer.alloc(0), /too short .*0 bytes, need at least 72/);
  layoutError(t, Buffer.alloc(71), /too short .*71 bytes/);
  layoutError(t, Buffer.alloc(512), /not an imapproxy stats file \(magic 0x00000000 at offset 72, expected 0x494d5058\)/);
  const good = encodeStats(distinctSnapshot());
  const v2 = Buffer.from(good);
  v2.writeUInt32LE(2, 76);
  layoutError(t, v2, /unknown stats layout version 2 \(this build reads version 1\)/);
  layoutError(t, good.subarray(0, 200), /truncated extension block \(200 bytes, layout version 1 needs 224\)/);
  layoutError(t, good.subarray(0, 74), /truncated extension block \(74 bytes\)/);
});

test('decode accepts a longer image of a known version (reserved bytes ignored)', (t) => {
  const good = encodeStats(distinctSnapshot());
  const longer = Buffer.concat([good, Buffer.alloc(100, 0xee)]);
  t.is(decodeStats(longer).extension?.evictions, decodeStats(good).extension?.evictions);
});

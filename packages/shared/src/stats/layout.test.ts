import test from 'ava';
import { decodeStats, encodeStats } from './codec.js';
import {
  C_FIELD_NAMES,
  C_LAYOUT_SIZE,
  EXT_END,
  EXT_FIELDS,
  EXT_FIELD_NAMES,
  EXT_HEADER,
  STATS_FILE_SIZE,
  type CCounters,
  type StatsSnapshot,
} from './layout.js';

// The C struct IMAPCounter on x86-64, written out independently of layout.ts (SPEC §8.1).
const C_STRUCT: ReadonlyArray<[name: string, offset: number, size: number]> = [
  ['startTime', 0, 8],
  ['countTime', 8, 8],
  ['currentClientConnections', 16, 4],
  ['peakClientConnections', 20, 4],
  ['inUseServerConnections', 24, 4],
  ['peakInUseServerConnections', 28, 4],
  ['retainedServerConnections', 32, 4],
  ['peakRetainedServerConnections', 36, 4],
  ['totalClientConnectionsAccepted', 40, 4],
  ['totalClientLogins', 44, 4],
  ['totalServerConnectionsCreated', 48, 4],
  ['totalServerConnectionsReused', 52, 4],
  ['totalSelectCommands', 56, 4],
  ['selectCacheHits', 60, 4],
  ['selectCacheMisses', 64, 4],
];

function zeroC(): CCounters {
  const c = {} as CCounters;
  for (const name of C_FIELD_NAMES) c[name] = 0;
  return c;
}

test('C block: field order is the C struct order', (t) => {
  t.deepEqual(
    C_FIELD_NAMES,
    C_STRUCT.map(([name]) => name),
  );
  t.is(C_LAYOUT_SIZE, 72);
});

test('C block: each field occupies exactly its C bytes, little-endian', (t) => {
  for (const [name, offset, size] of C_STRUCT) {
    const c = zeroC();
    // All-ones in the field's width (for time_t: -1).
    (c as Record<string, number>)[name] = size === 8 ? -1 : 0xffffffff;
    const buf = encodeStats({ ...c, extension: null });
    t.is(buf.length, 72);
    for (let i = 0; i < buf.length; i++) {
      const inside = i >= offset && i < offset + size;
      t.is(buf[i], inside ? 0xff : 0x00, `${name}: byte ${i}`);
    }
  }
});

test('C block: byte-by-byte image of a known struct', (t) => {
  const expected = Buffer.alloc(72);
  // Hand-packed like the C compiler would: time_t LE at 0 and 8, then u32 LE from 16; 68..71 pad.
  expected.writeBigInt64LE(0x0001020304050607n, 0);
  expected.writeBigInt64LE(1700000100n, 8);
  for (let i = 0; i < 13; i++) expected.writeUInt32LE(0x11111111 * ((i % 15) + 1), 16 + 4 * i);
  const c = {} as CCounters;
  c.startTime = Number(0x0001020304050607n);
  c.countTime = 1700000100;
  C_FIELD_NAMES.slice(2).forEach((name, i) => {
    c[name] = 0x11111111 * ((i % 15) + 1);
  });
  const encoded = encodeStats({ ...c, extension: null });
  t.deepEqual([...encoded], [...expected]);
  // The first 8 bytes, spelled out: little-endian time_t.
  t.deepEqual([...encoded.subarray(0, 8)], [7, 6, 5, 4, 3, 2, 1, 0]);
  const decoded = decodeStats(expected);
  t.is(decoded.countTime, 1700000100);
  t.is(decoded.selectCacheMisses, 0xdddddddd);
  t.is(decoded.currentClientConnections, 0x11111111);
  t.is(decoded.layoutVersion, null);
  t.is(decoded.extension, null);
});

test('extension block: header words and documented offsets', (t) => {
  t.is(EXT_HEADER.magic.offset, 72);
  t.is(EXT_HEADER.layoutVersion.offset, 76);
  t.is(EXT_HEADER.generation.offset, 80);
  t.is(EXT_HEADER.layoutSize.offset, 84);
  const expectedOffsets: Record<string, number> = {
    clientConnectionsAccepted: 88,
    clientLogins: 96,
    serverConnectionsCreated: 104,
    serverConnectionsReused: 112,
    selectCommands: 120,
    selectCacheHits: 128,
    selectCacheMisses: 136,
    loginFailures: 144,
    serverConnectFailures: 152,
    evictions: 160,
    expirations: 168,
    invalidations: 176,
    resyncsOk: 184,
    resyncsFailed: 192,
    gaugeUnderflows: 200,
    flushedAtMs: 208,
    writerPid: 216,
  };
  t.deepEqual(
    Object.fromEntries(EXT_FIELD_NAMES.map((n) => [n, EXT_FIELDS[n].offset])),
    expectedOffsets,
  );
  t.is(EXT_END, 224);
  t.is(STATS_FILE_SIZE, 512);
  for (const name of EXT_FIELD_NAMES) t.is(EXT_FIELDS[name].offset % 8, 0, `${name} aligned`);
});

test('extension block: magic, version, size bytes and zeroed reserved area', (t) => {
  const c = zeroC();
  const ext = Object.fromEntries(EXT_FIELD_NAMES.map((n) => [n, 0])) as NonNullable<
    StatsSnapshot['extension']
  >;
  ext.generation = 6;
  ext.writerPid = 0x1234;
  const buf = encodeStats({ ...c, extension: ext });
  t.is(buf.length, 512);
  t.deepEqual([...buf.subarray(72, 88)], [0x58, 0x50, 0x4d, 0x49, 1, 0, 0, 0, 6, 0, 0, 0, 0, 2, 0, 0]);
  t.is(buf.subarray(72, 76).toString('latin1'), 'XPMI'); // 'IMPX' as a LE u32
  t.deepEqual([...buf.subarray(216, 224)], [0x34, 0x12, 0, 0, 0, 0, 0, 0]);
  t.true(buf.subarray(224).every((b) => b === 0));
  t.true(buf.subarray(68, 72).every((b) => b === 0));
});

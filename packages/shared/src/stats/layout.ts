// The statistics file layout, defined once. Everything else (the live SharedArrayBuffer,
// the encoder, the decoder, pimpstat) derives its offsets from the tables below.
//
// Bytes 0..71 are exactly the C original's `struct IMAPCounter` on x86-64 (SPEC §8.1), so
// the C `pimpstat` (which mmap()s the first 72 bytes) keeps working on our file. Bytes 72..511
// are our extension block; the C reader never looks at them.
//
// Byte order is little-endian (x86-64, arm64). The C file was "native" binary; we pin it so a
// file copied between hosts still decodes.
//
//  Offset  Size  Type    Field                            Notes
//  ------  ----  ------  -------------------------------  ---------------------------------------
//  C block (struct IMAPCounter, x86-64)
//       0     8  i64     StartTime                        time_t, seconds; daemon start
//       8     8  i64     CountTime                        time_t, seconds; last counter reset
//      16     4  u32     CurrentClientConnections         gauge
//      20     4  u32     PeakClientConnections            high-water mark (reset to 0)
//      24     4  u32     InUseServerConnections           gauge: backends attached to a client
//      28     4  u32     PeakInUseServerConnections       high-water mark (reset to 0)
//      32     4  u32     RetainedServerConnections        gauge: cached (idle) backends
//      36     4  u32     PeakRetainedServerConnections    high-water mark (reset to 0)
//      40     4  u32     TotalClientConnectionsAccepted   total (reset to 0)
//      44     4  u32     TotalClientLogins                total (reset to 0)
//      48     4  u32     TotalServerConnectionsCreated    total (reset to 0)
//      52     4  u32     TotalServerConnectionsReused     total (reset to 0)
//      56     4  u32     TotalSelectCommands              total (never reset)
//      60     4  u32     SelectCacheHits                  total (never reset)
//      64     4  u32     SelectCacheMisses                total (never reset)
//      68     4  -       padding                          struct alignment to 8; always 0
//  Extension block
//      72     4  u32     magic                            0x494d5058 ('IMPX' read as a LE u32)
//      76     4  u32     layoutVersion                    1
//      80     4  u32     generation                       seqlock word: odd while a flush is in
//                                                         progress, even when the file is complete
//      84     4  u32     layoutSize                       512 (bytes the writer maintains)
//      88     8  u64     clientConnectionsAccepted        64-bit copy of TotalClientConnectionsAccepted
//      96     8  u64     clientLogins                     64-bit copy of TotalClientLogins
//     104     8  u64     serverConnectionsCreated         64-bit copy of TotalServerConnectionsCreated
//     112     8  u64     serverConnectionsReused          64-bit copy of TotalServerConnectionsReused
//     120     8  u64     selectCommands                   64-bit copy of TotalSelectCommands
//     128     8  u64     selectCacheHits                  64-bit copy of SelectCacheHits
//     136     8  u64     selectCacheMisses                64-bit copy of SelectCacheMisses
//     144     8  u64     loginFailures                    client logins refused (since start)
//     152     8  u64     serverConnectFailures            backend connects/logins failed (since start)
//     160     8  u64     evictions                        cached backends dropped by LRU (since start)
//     168     8  u64     expirations                      cached backends expired (since start)
//     176     8  u64     invalidations                    backends closed instead of cached (since start)
//     184     8  u64     resyncsOk                        resyncs after client vanished, ok (since start)
//     192     8  u64     resyncsFailed                    resyncs that failed (since start)
//     200     8  u64     gaugeUnderflows                  decrements refused because a gauge was 0:
//                                                         a bookkeeping bug in the core (the C original
//                                                         wrapped to ~4 billion instead, SPEC §8.1)
//     208     8  u64     flushedAtMs                      wall clock of the last flush, ms since epoch
//     216     8  u64     writerPid                        pid of the daemon that writes the file
//     224   288  -       reserved                         always 0
//     512            end of file

/** Size of the C `struct IMAPCounter` on x86-64, padding included. */
export const C_LAYOUT_SIZE = 72;
/** Size of the whole file our writer maintains. */
export const STATS_FILE_SIZE = 512;
/** 'IMPX' as a little-endian u32 at offset 72. */
export const STATS_MAGIC = 0x494d5058;
export const STATS_LAYOUT_VERSION = 1;

export type FieldType = 'time' | 'u32' | 'u64';
export interface FieldSpec {
  readonly offset: number;
  readonly type: FieldType;
}

/** The C struct, in its order; key = camelCase of the C member name. */
export const C_FIELDS = {
  startTime: { offset: 0, type: 'time' },
  countTime: { offset: 8, type: 'time' },
  currentClientConnections: { offset: 16, type: 'u32' },
  peakClientConnections: { offset: 20, type: 'u32' },
  inUseServerConnections: { offset: 24, type: 'u32' },
  peakInUseServerConnections: { offset: 28, type: 'u32' },
  retainedServerConnections: { offset: 32, type: 'u32' },
  peakRetainedServerConnections: { offset: 36, type: 'u32' },
  totalClientConnectionsAccepted: { offset: 40, type: 'u32' },
  totalClientLogins: { offset: 44, type: 'u32' },
  totalServerConnectionsCreated: { offset: 48, type: 'u32' },
  totalServerConnectionsReused: { offset: 52, type: 'u32' },
  totalSelectCommands: { offset: 56, type: 'u32' },
  selectCacheHits: { offset: 60, type: 'u32' },
  selectCacheMisses: { offset: 64, type: 'u32' },
} as const satisfies Record<string, FieldSpec>;

/** Header words of the extension block. */
export const EXT_HEADER = {
  magic: { offset: 72, type: 'u32' },
  layoutVersion: { offset: 76, type: 'u32' },
  generation: { offset: 80, type: 'u32' },
  layoutSize: { offset: 84, type: 'u32' },
} as const satisfies Record<string, FieldSpec>;

/** 64-bit counters of the extension block, in file order. */
export const EXT_FIELDS = {
  clientConnectionsAccepted: { offset: 88, type: 'u64' },
  clientLogins: { offset: 96, type: 'u64' },
  serverConnectionsCreated: { offset: 104, type: 'u64' },
  serverConnectionsReused: { offset: 112, type: 'u64' },
  selectCommands: { offset: 120, type: 'u64' },
  selectCacheHits: { offset: 128, type: 'u64' },
  selectCacheMisses: { offset: 136, type: 'u64' },
  loginFailures: { offset: 144, type: 'u64' },
  serverConnectFailures: { offset: 152, type: 'u64' },
  evictions: { offset: 160, type: 'u64' },
  expirations: { offset: 168, type: 'u64' },
  invalidations: { offset: 176, type: 'u64' },
  resyncsOk: { offset: 184, type: 'u64' },
  resyncsFailed: { offset: 192, type: 'u64' },
  gaugeUnderflows: { offset: 200, type: 'u64' },
  flushedAtMs: { offset: 208, type: 'u64' },
  writerPid: { offset: 216, type: 'u64' },
} as const satisfies Record<string, FieldSpec>;

/** First byte after the last defined field; [EXT_END, STATS_FILE_SIZE) is reserved. */
export const EXT_END = 224;

export type CFieldName = keyof typeof C_FIELDS;
export type ExtFieldName = keyof typeof EXT_FIELDS;

/** The C struct's fields. u32 values are unsigned (0..2^32-1); times are seconds. */
export type CCounters = { [K in CFieldName]: number };

/** The extension block's counters plus its generation word. */
export type ExtensionCounters = { [K in ExtFieldName]: number } & { generation: number };

/** Every field of the file. `extension` is null for a 72-byte file written by the C daemon. */
export interface StatsSnapshot extends CCounters {
  extension: ExtensionCounters | null;
}

/** The C struct's field names in file order (the order pimpstat -c does *not* follow). */
export const C_FIELD_NAMES = Object.keys(C_FIELDS) as CFieldName[];
export const EXT_FIELD_NAMES = Object.keys(EXT_FIELDS) as ExtFieldName[];

// Public surface of the statistics file: layout, live registry, writer, reader.
export {
  C_FIELDS,
  C_FIELD_NAMES,
  C_LAYOUT_SIZE,
  EXT_END,
  EXT_FIELDS,
  EXT_FIELD_NAMES,
  EXT_HEADER,
  STATS_FILE_SIZE,
  STATS_LAYOUT_VERSION,
  STATS_MAGIC,
  type CCounters,
  type CFieldName,
  type ExtFieldName,
  type ExtensionCounters,
  type FieldSpec,
  type FieldType,
  type StatsSnapshot,
} from './layout.js';
export { decodeStats, encodeStats, type DecodedStats } from './codec.js';
export { StatsRegistry, type ResettableTotal } from './registry.js';
export {
  STATS_FLUSH_INTERVAL_MS,
  STATS_HEARTBEAT_MS,
  StatsFileWriter,
  type StatsFileWriterOptions,
} from './writer.js';
export { readStatsFile, type ReadOptions } from './reader.js';

// Pure encode/decode of the statistics file (layout in ./layout.ts). No I/O here.
import { ImapProxyError } from '../errors.js';
import {
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
  type ExtensionCounters,
  type FieldSpec,
  type StatsSnapshot,
} from './layout.js';

export type DecodedStats = StatsSnapshot & { layoutVersion: number | null };

function readField(buf: Buffer, spec: FieldSpec): number {
  switch (spec.type) {
    case 'time':
      return Number(buf.readBigInt64LE(spec.offset));
    case 'u32':
      return buf.readUInt32LE(spec.offset);
    case 'u64':
      return Number(buf.readBigUInt64LE(spec.offset));
  }
}

function writeField(buf: Buffer, spec: FieldSpec, value: number): void {
  switch (spec.type) {
    case 'time':
      buf.writeBigInt64LE(BigInt(Math.trunc(value)), spec.offset);
      return;
    case 'u32':
      // The C fields are unsigned int: keep the value modulo 2^32 like the C struct would.
      buf.writeUInt32LE(Math.trunc(value) >>> 0, spec.offset);
      return;
    case 'u64':
      buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(Math.trunc(value))), spec.offset);
      return;
  }
}

/**
 * Encodes a snapshot. With `extension` null the result is the bare 72-byte C struct (what the
 * C daemon writes); otherwise the full 512-byte file with magic, version and generation.
 */
export function encodeStats(snapshot: StatsSnapshot): Buffer {
  const ext = snapshot.extension;
  const buf = Buffer.alloc(ext === null ? C_LAYOUT_SIZE : STATS_FILE_SIZE);
  for (const name of C_FIELD_NAMES) writeField(buf, C_FIELDS[name], snapshot[name]);
  if (ext !== null) {
    writeField(buf, EXT_HEADER.magic, STATS_MAGIC);
    writeField(buf, EXT_HEADER.layoutVersion, STATS_LAYOUT_VERSION);
    writeField(buf, EXT_HEADER.generation, ext.generation);
    writeField(buf, EXT_HEADER.layoutSize, STATS_FILE_SIZE);
    for (const name of EXT_FIELD_NAMES) writeField(buf, EXT_FIELDS[name], ext[name]);
  }
  return buf;
}

function layoutError(source: string, what: string): ImapProxyError {
  return new ImapProxyError('IMAPPROXY_ERR_STATS_LAYOUT', `${source}: ${what}`);
}

/**
 * Decodes a stats file image. A buffer of exactly 72 bytes is the C original's struct
 * (layoutVersion null, extension null). Anything longer must carry our magic and a known
 * layout version. `source` names the file in error messages.
 */
export function decodeStats(buf: Buffer, source = 'stats data'): DecodedStats {
  if (buf.length < C_LAYOUT_SIZE) {
    throw layoutError(
      source,
      `too short for a stats file (${buf.length} bytes, need at least ${C_LAYOUT_SIZE})`,
    );
  }
  const c = {} as CCounters;
  for (const name of C_FIELD_NAMES) c[name] = readField(buf, C_FIELDS[name]);
  if (buf.length === C_LAYOUT_SIZE) {
    return { ...c, extension: null, layoutVersion: null };
  }
  if (buf.length < EXT_HEADER.layoutVersion.offset + 4) {
    throw layoutError(source, `truncated extension block (${buf.length} bytes)`);
  }
  const magic = readField(buf, EXT_HEADER.magic);
  if (magic !== STATS_MAGIC) {
    throw layoutError(
      source,
      `not an imapproxy stats file (magic 0x${hex(magic)} at offset ${EXT_HEADER.magic.offset}, expected 0x${hex(STATS_MAGIC)})`,
    );
  }
  const version = readField(buf, EXT_HEADER.layoutVersion);
  if (version !== STATS_LAYOUT_VERSION) {
    throw layoutError(
      source,
      `unknown stats layout version ${version} (this build reads version ${STATS_LAYOUT_VERSION}); use a pimpstat from the same release as imapproxyd`,
    );
  }
  if (buf.length < EXT_END) {
    throw layoutError(
      source,
      `truncated extension block (${buf.length} bytes, layout version ${version} needs ${EXT_END})`,
    );
  }
  const ext = { generation: readField(buf, EXT_HEADER.generation) } as ExtensionCounters;
  for (const name of EXT_FIELD_NAMES) ext[name] = readField(buf, EXT_FIELDS[name]);
  return { ...c, extension: ext, layoutVersion: version };
}

/** Generation word of a full-layout image (the seqlock word), or null for a C-only image. */
export function generationOf(buf: Buffer): number | null {
  if (buf.length < EXT_HEADER.generation.offset + 4) return null;
  return buf.readUInt32LE(EXT_HEADER.generation.offset);
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

// Reads the stats file without ever returning a torn snapshot (reader half of the seqlock
// described in ./writer.ts):
//   read the whole image, then read the generation word once more. The image is consistent when
//   its generation is even and the word has not moved meanwhile: any flush overlapping the read
//   made the word odd *before* touching the counters, so the second read would differ.
// A writer killed between its steps leaves the word odd for good; two identical images in a row
// are then accepted, since nobody is writing any more.
// A 72-byte file from the C daemon has no generation word: two identical reads in a row are
// taken as stable, and the last read is returned if it keeps changing (the C daemon updated its
// mmap()ed struct without any lock, so nothing better exists).
import fs from 'node:fs';
import { ImapProxyError } from '../errors.js';
import { decodeStats, generationOf, type DecodedStats } from './codec.js';
import { EXT_HEADER, STATS_FILE_SIZE } from './layout.js';

/** Where readConsistent gets its bytes; a file in readStatsFile, a script in the tests. */
export interface StatsSource {
  /** Name for error messages (the file path). */
  readonly name: string;
  /** The whole image from offset 0. */
  readImage(): Buffer;
  /** The generation word (offset 80) read on its own, or null if the file is too short. */
  readGeneration(): number | null;
}

export interface ReadOptions {
  /** Reads before giving up; default 6. */
  attempts?: number;
  /** Pause between attempts (ms); default 2. */
  retryDelayMs?: number;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(sleepCell, 0, 0, ms);
}

export function readConsistent(source: StatsSource, options: ReadOptions = {}): DecodedStats {
  const attempts = Math.max(1, options.attempts ?? 6);
  const delay = options.retryDelayMs ?? 2;
  let previous: Buffer | null = null;
  let lastDecoded: DecodedStats | null = null;
  let lastError: unknown = null;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) sleepSync(delay);
    const image = source.readImage();
    let decoded: DecodedStats;
    try {
      decoded = decodeStats(image, source.name);
    } catch (err) {
      // A file caught between truncate and first write at daemon start looks too short or
      // magic-less for an instant: retry before reporting it.
      lastError = err;
      previous = null;
      continue;
    }
    lastError = null;
    const stableRepeat = previous !== null && previous.equals(image);
    previous = image;
    lastDecoded = decoded;
    const generation = generationOf(image);
    if (decoded.extension === null || generation === null) {
      if (stableRepeat) return decoded;
      continue;
    }
    const again = source.readGeneration();
    if (again !== generation) continue;
    if (generation % 2 === 0 || stableRepeat) return decoded;
  }
  if (lastError !== null) throw lastError;
  if (lastDecoded !== null && lastDecoded.extension === null) return lastDecoded;
  throw new ImapProxyError(
    'IMAPPROXY_ERR_STATS_FILE',
    `stats file ${source.name} kept changing while being read (${attempts} torn reads); try again`,
  );
}

/** Reads and decodes the stats file at `path` (our 512-byte layout or the C 72-byte one). */
export function readStatsFile(path: string, options: ReadOptions = {}): DecodedStats {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw new ImapProxyError(
      'IMAPPROXY_ERR_STATS_FILE',
      `cannot open stats file ${path}: ${describe(err)}`,
      { cause: err },
    );
  }
  try {
    const source: StatsSource = {
      name: path,
      readImage: () => readAll(fd, path),
      readGeneration: () => {
        const word = Buffer.alloc(4);
        const n = fs.readSync(fd, word, 0, 4, EXT_HEADER.generation.offset);
        return n === 4 ? word.readUInt32LE(0) : null;
      },
    };
    return readConsistent(source, options);
  } catch (err) {
    if (err instanceof ImapProxyError) throw err;
    throw new ImapProxyError(
      'IMAPPROXY_ERR_STATS_FILE',
      `cannot read stats file ${path}: ${describe(err)}`,
      { cause: err },
    );
  } finally {
    fs.closeSync(fd);
  }
}

function readAll(fd: number, path: string): Buffer {
  // One read() of the whole file: the writer's image is 512 bytes, well under a page.
  const size = fs.fstatSync(fd).size;
  if (size > 1 << 20) {
    throw new ImapProxyError(
      'IMAPPROXY_ERR_STATS_LAYOUT',
      `${path}: ${size} bytes is far too large for a stats file; check stat_filename`,
    );
  }
  const buf = Buffer.alloc(Math.max(size, STATS_FILE_SIZE));
  let got = 0;
  while (got < buf.length) {
    const n = fs.readSync(fd, buf, got, buf.length - got, got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file (is imapproxyd running with this stat_filename?)';
    if (code === 'EACCES' || code === 'EPERM') {
      return 'permission denied (run as root or as the proxy user; the file is mode 0600)';
    }
    if (code === 'EISDIR') return 'is a directory';
    return err.message;
  }
  return String(err);
}

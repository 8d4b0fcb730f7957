// The live counters: one SharedArrayBuffer laid out exactly like the file (./layout.ts, in the
// host's byte order), updated with Atomics at the event. The writer copies it to disk.
//
// Each field is updated atomically; a snapshot taken while another thread updates counters can
// mix fields from before and after one event (like the C original, which took no lock at all).
// On the daemon's single event loop that cannot happen.
import {
  C_FIELDS,
  C_FIELD_NAMES,
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
  type StatsSnapshot,
} from './layout.js';

type U32Field = { [K in CFieldName]: (typeof C_FIELDS)[K]['type'] extends 'u32' ? K : never }[CFieldName];

/** The extension totals resetCounters() zeroes. */
export type ResettableTotal = 'clientConnectionsAccepted' | 'clientLogins' | 'serverConnectionsCreated' | 'serverConnectionsReused';
const RESETTABLE_TOTALS: readonly ResettableTotal[] = ['clientConnectionsAccepted', 'clientLogins', 'serverConnectionsCreated', 'serverConnectionsReused'];

function nowSecondsDefault(): number {
  return Math.floor(Date.now() / 1000);
}

export class StatsRegistry {
  readonly buffer: SharedArrayBuffer;
  readonly #u32: Uint32Array;
  readonly #i64: BigInt64Array;
  readonly #u64: BigUint64Array;
  /** What resetCounters() took from each total, so sinceStart() stays monotonic (Prometheus counters). Not in the file. */
  readonly #carried: Record<ResettableTotal, number> = { clientConnectionsAccepted: 0, clientLogins: 0, serverConnectionsCreated: 0, serverConnectionsReused: 0 };

  constructor(nowSeconds: number = nowSecondsDefault()) {
    this.buffer = new SharedArrayBuffer(STATS_FILE_SIZE);
    this.#u32 = new Uint32Array(this.buffer);
    this.#i64 = new BigInt64Array(this.buffer);
    this.#u64 = new BigUint64Array(this.buffer);
    this.#setTime('startTime', nowSeconds);
    this.#setTime('countTime', nowSeconds);
    Atomics.store(this.#u32, EXT_HEADER.magic.offset / 4, STATS_MAGIC);
    Atomics.store(this.#u32, EXT_HEADER.layoutVersion.offset / 4, STATS_LAYOUT_VERSION);
    Atomics.store(this.#u32, EXT_HEADER.layoutSize.offset / 4, STATS_FILE_SIZE);
    this.#setExt('writerPid', process.pid);
  }

  /** An accepted client socket (after tcp wrappers). */
  clientOpened(): void {
    this.#gaugeUp('currentClientConnections', 'peakClientConnections');
    this.#addU32('totalClientConnectionsAccepted');
    this.#addExt('clientConnectionsAccepted');
  }

  /** A client socket closed. Never goes below 0 (counted in gaugeUnderflows instead). */
  clientClosed(): void {
    this.#gaugeDown('currentClientConnections');
  }

  /** A client login succeeded on a new backend connection or on a cached one. */
  loginSucceeded(kind: 'new' | 'reused'): void {
    this.#addU32('totalClientLogins');
    this.#addExt('clientLogins');
    if (kind === 'new') {
      this.#addU32('totalServerConnectionsCreated');
      this.#addExt('serverConnectionsCreated');
    } else {
      this.#addU32('totalServerConnectionsReused');
      this.#addExt('serverConnectionsReused');
    }
  }

  loginFailed(): void {
    this.#addExt('loginFailures');
  }

  serverConnectFailed(): void {
    this.#addExt('serverConnectFailures');
  }

  /** A backend connection got attached to (+1) or detached from (-1) a client. */
  activeChanged(delta: 1 | -1): void {
    if (delta === 1) this.#gaugeUp('inUseServerConnections', 'peakInUseServerConnections');
    else this.#gaugeDown('inUseServerConnections');
  }

  /** A backend connection entered (+1) or left (-1) the cache. */
  cachedChanged(delta: 1 | -1): void {
    if (delta === 1) this.#gaugeUp('retainedServerConnections', 'peakRetainedServerConnections');
    else this.#gaugeDown('retainedServerConnections');
  }

  evicted(): void {
    this.#addExt('evictions');
  }

  expired(): void {
    this.#addExt('expirations');
  }

  invalidated(): void {
    this.#addExt('invalidations');
  }

  resync(ok: boolean): void {
    this.#addExt(ok ? 'resyncsOk' : 'resyncsFailed');
  }

  /** A SELECT seen by the select cache, answered from the cache (hit) or not (miss). */
  selectCommand(hit: boolean): void {
    this.#addU32('totalSelectCommands');
    this.#addExt('selectCommands');
    if (hit) {
      this.#addU32('selectCacheHits');
      this.#addExt('selectCacheHits');
    } else {
      this.#addU32('selectCacheMisses');
      this.#addExt('selectCacheMisses');
    }
  }

  /**
   * XPROXY_RESETCOUNTERS, exactly as the original (SPEC §6): CountTime = now, and PeakClient,
   * PeakInUse, PeakRetained and the four connection/login totals become 0 (so a peak can read
   * below its current gauge until the gauge next rises; that is what the original shows).
   * The gauges and the select-cache counters are untouched. The extension's 64-bit copies of
   * the four totals are zeroed with them; the extension-only counters (failures, evictions,
   * expirations, invalidations, resyncs) count since daemon start, like the select counters.
   */
  resetCounters(nowSeconds: number = nowSecondsDefault()): void {
    this.#setTime('countTime', nowSeconds);
    for (const name of [
      'peakClientConnections',
      'peakInUseServerConnections',
      'peakRetainedServerConnections',
      'totalClientConnectionsAccepted',
      'totalClientLogins',
      'totalServerConnectionsCreated',
      'totalServerConnectionsReused',
    ] as const) {
      Atomics.store(this.#u32, C_FIELDS[name].offset / 4, 0);
    }
    for (const name of RESETTABLE_TOTALS) {
      this.#carried[name] += Number(Atomics.exchange(this.#u64, EXT_FIELDS[name].offset / 8, 0n));
    }
  }

  /**
   * A total since daemon start, as if resetCounters() had never run: the
   * metrics endpoint exposes these as Prometheus counters, which must not go
   * down. In memory only; the stats file keeps the original's reset semantics.
   */
  sinceStart(name: ResettableTotal): number {
    return this.#carried[name] + Number(Atomics.load(this.#u64, EXT_FIELDS[name].offset / 8));
  }

  /** Every field as a plain object (extension always present). */
  snapshot(): StatsSnapshot {
    const c = {} as CCounters;
    for (const name of C_FIELD_NAMES) {
      const spec = C_FIELDS[name];
      c[name] =
        spec.type === 'time'
          ? Number(Atomics.load(this.#i64, spec.offset / 8))
          : Atomics.load(this.#u32, spec.offset / 4);
    }
    const ext = {
      generation: Atomics.load(this.#u32, EXT_HEADER.generation.offset / 4),
    } as ExtensionCounters;
    for (const name of EXT_FIELD_NAMES) {
      ext[name] = Number(Atomics.load(this.#u64, EXT_FIELDS[name].offset / 8));
    }
    return { ...c, extension: ext };
  }

  #setTime(name: 'startTime' | 'countTime', seconds: number): void {
    Atomics.store(this.#i64, C_FIELDS[name].offset / 8, BigInt(Math.trunc(seconds)));
  }

  #addU32(name: U32Field): number {
    const index = C_FIELDS[name].offset / 4;
    // Atomics.add returns the old value; the u32 wraps modulo 2^32 like the C unsigned int.
    return (Atomics.add(this.#u32, index, 1) + 1) >>> 0;
  }

  #addExt(name: ExtFieldName): void {
    Atomics.add(this.#u64, EXT_FIELDS[name].offset / 8, 1n);
  }

  #setExt(name: ExtFieldName, value: number): void {
    Atomics.store(this.#u64, EXT_FIELDS[name].offset / 8, BigInt(value));
  }

  #gaugeUp(gauge: U32Field, peak: U32Field): void {
    const value = this.#addU32(gauge);
    const peakIndex = C_FIELDS[peak].offset / 4;
    for (;;) {
      const old = Atomics.load(this.#u32, peakIndex);
      if (value <= old) return;
      if (Atomics.compareExchange(this.#u32, peakIndex, old, value) === old) return;
    }
  }

  // The C original decremented blindly and wrapped to ~4 billion on its invalidation paths
  // (SPEC §8.1). We refuse to go below 0 and count the refusal, so the bug stays visible.
  #gaugeDown(gauge: U32Field): void {
    const index = C_FIELDS[gauge].offset / 4;
    for (;;) {
      const old = Atomics.load(this.#u32, index);
      if (old === 0) {
        this.#addExt('gaugeUnderflows');
        return;
      }
      if (Atomics.compareExchange(this.#u32, index, old, old - 1) === old) return;
    }
  }
}

/**
 * Seqlock helpers for the file writer (not part of the public API). beginFlush makes the
 * generation odd and stamps the flush time; endFlush makes it even again.
 */
export function beginFlush(registry: StatsRegistry, nowMs: number): number {
  const u32 = new Uint32Array(registry.buffer);
  const u64 = new BigUint64Array(registry.buffer);
  const index = EXT_HEADER.generation.offset / 4;
  let gen = Atomics.load(u32, index);
  // A flush that threw half-way leaves the word odd; do not make it even by accident.
  if (gen % 2 === 0) gen = (Atomics.add(u32, index, 1) + 1) >>> 0;
  Atomics.store(u64, EXT_FIELDS.flushedAtMs.offset / 8, BigInt(Math.trunc(nowMs)));
  return gen;
}

export function endFlush(registry: StatsRegistry): number {
  const u32 = new Uint32Array(registry.buffer);
  const index = EXT_HEADER.generation.offset / 4;
  const gen = Atomics.load(u32, index);
  if (gen % 2 === 0) return gen;
  return (Atomics.add(u32, index, 1) + 1) >>> 0;
}

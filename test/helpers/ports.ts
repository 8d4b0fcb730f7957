// Free loopback TCP ports, and "is something listening" checks that do not connect
// (a probe connection would show up in Dovecot's log and in proxy statistics).
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { scaled } from './wait.js';

export const LOOPBACK = '127.0.0.1';

function openOnZero(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => resolve(server));
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** One free port on 127.0.0.1 (listen on 0, read the port, close). */
export async function getFreePort(): Promise<number> {
  const [port] = await getFreePorts(1);
  return port!;
}

/** `count` distinct free ports: all are held open at once, so they cannot repeat. */
export async function getFreePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await openOnZero());
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map(closeServer));
  }
}

const TCP_LISTEN = '0A';

/**
 * True if a socket in LISTEN state is bound to `port` on 127.0.0.1 or 0.0.0.0 in this
 * network namespace. Reads /proc/net/tcp instead of connecting.
 */
export async function isListening(port: number): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const wanted = new Set([`0100007F:${hexPort}`, `00000000:${hexPort}`]);
  const table = await readFile('/proc/net/tcp', 'latin1');
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length > 3 && cols[3] === TCP_LISTEN && wanted.has(cols[1]!)) return true;
  }
  return false;
}

export interface WaitForListeningOptions {
  /** Deadline on a quiet machine (default 10 s), stretched by the load (wait.ts). */
  timeoutMs?: number;
  /** Polled too: return a reason string to stop waiting early (e.g. "process exited"). */
  abortReason?: () => string | undefined;
  what?: string;
}

/** Resolves once every port listens; rejects on timeout or when abortReason() says so. */
export async function waitForListening(ports: number[], opts: WaitForListeningOptions = {}): Promise<void> {
  const timeoutMs = scaled(opts.timeoutMs ?? 10_000);
  const deadline = Date.now() + timeoutMs;
  const what = opts.what ?? 'server';
  for (let delay = 5; ; delay = Math.min(delay * 2, 50)) {
    const reason = opts.abortReason?.();
    if (reason) throw new Error(`${what} did not start listening on ${ports.join(', ')}: ${reason}`);
    const states = await Promise.all(ports.map(isListening));
    if (states.every(Boolean)) return;
    if (Date.now() > deadline) {
      const missing = ports.filter((_, i) => !states[i]);
      throw new Error(`${what} did not start listening on 127.0.0.1:${missing.join(', ')} within ${timeoutMs} ms`);
    }
    await sleep(delay);
  }
}

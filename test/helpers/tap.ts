// A TCP pass-through between a proxy and its server that records what the
// proxy sends on each server connection, to check what the server saw
// (for example: did a SELECT reach the server, or only the proxy's NOOP?).
import net from 'node:net';
import { LOOPBACK } from './ports.js';
import { prng } from './prng.js';

export interface Tap {
  port: number;
  /** Bytes the proxy sent, per server connection, in connection order. */
  sent: Buffer[][];
  /** Bytes the server sent back, per server connection (same order as `sent`). */
  received: Buffer[][];
  /** Everything the proxy sent, as one latin1 string, connections separated by `\n--\n`. */
  allSent(): string;
  /**
   * The command lines the server received on each connection logged in as
   * `user`, after the LOGIN; the proxy's own tags (X<hex>.<n>) read "P".
   * Literal data shows up as lines too.
   */
  serverSaw(user: string): string[][];
  close(): Promise<void>;
}

export interface TapOptions {
  /**
   * Hand the server's bytes to the proxy in pieces of 1-40 bytes (a seeded
   * sequence), with a pause now and then: every line and literal then crosses
   * read boundaries somewhere.
   */
  splitServerBytes?: { seed: number };
  /**
   * Source address of the connections to the server, e.g. 127.0.0.2, which
   * Dovecot does not count as a secure (local) address.
   */
  localAddress?: string;
}


export async function startTap(target: number, options: TapOptions = {}): Promise<Tap> {
  const random = options.splitServerBytes ? prng(options.splitServerBytes.seed) : null;
  const sent: Buffer[][] = [];
  const received: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (from) => {
    const record: Buffer[] = [];
    const back: Buffer[] = [];
    sent.push(record);
    received.push(back);
    const to = net.connect({ host: LOOPBACK, port: target, localAddress: options.localAddress, noDelay: true });
    for (const s of [from, to]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        from.destroy();
        to.destroy();
      });
    }
    from.on('data', (b: Buffer) => record.push(b));
    to.on('data', (b: Buffer) => back.push(b));
    from.pipe(to);
    if (random === null) {
      to.pipe(from);
    } else {
      let queue = Promise.resolve();
      to.on('data', (b: Buffer) => {
        to.pause();
        queue = queue.then(async () => {
          for (let i = 0; i < b.length;) {
            const n = 1 + Math.floor(random() * 40);
            if (!from.destroyed) from.write(b.subarray(i, i + n));
            i += n;
            if (random() < 0.05) await new Promise((resolve) => setImmediate(resolve));
          }
          to.resume();
        });
      });
    }
  });
  await new Promise<void>((resolve) => server.listen({ host: LOOPBACK, port: 0 }, () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    sent,
    received,
    allSent: () => sent.map((r) => Buffer.concat(r).toString('latin1')).join('\n--\n'),
    serverSaw(user) {
      const out: string[][] = [];
      for (const record of sent) {
        const lines = Buffer.concat(record).toString('latin1').split('\r\n');
        const at = lines.findIndex((l) => new RegExp(`^\\S+ LOGIN "${user}" `).test(l));
        if (at < 0) continue;
        out.push(lines.slice(at + 1).filter((l) => l !== '').map((l) => l.replace(/^X[0-9A-F]{6}\.\d+ /, 'P ')));
      }
      return out;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

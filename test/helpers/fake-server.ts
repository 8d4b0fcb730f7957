// A scripted fake IMAP server, for fault injection and for seeing the exact bytes a
// proxy sends: a server that drops the connection mid-login or mid-FETCH, rejects
// an ID, sends a hostile banner, or accepts AUTHENTICATE after login. Dovecot cannot
// be made to do those things on cue. Every normal-path test talks to a real Dovecot.
//
// One copy for every test file: the script of each connection reads lines or whole
// commands (literals included) and answers as it likes.
import net from 'node:net';
import { LOOPBACK } from './ports.js';
import { scaled } from './wait.js';

/** One connection to the fake server, as its script sees it. */
export interface FakeConn {
  socket: net.Socket;
  /** Next line from the proxy (without CRLF, latin1); rejects when the connection closes. */
  readLine(timeoutMs?: number): Promise<string>;
  /**
   * Next whole command: its lines and literals joined as sent ({n}CRLF<bytes>),
   * decoded as UTF-8. A synchronising literal gets `+ OK` first, as a server would.
   */
  readCommand(timeoutMs?: number): Promise<string>;
  send(text: string): void;
  /** Every line the proxy sent on this connection so far (literal bytes included, split at CRLF). */
  received: string[];
}

export interface FakeServer {
  port: number;
  /** Connections accepted so far. */
  connections: FakeConn[];
  close(): Promise<void>;
}

export const FAKE_GREETING = '* OK [CAPABILITY IMAP4rev1 LITERAL+ ID UNSELECT] Fake ready.';

const LITERAL_AT_END = /\{(\d+)(\+?)\}$/;

/**
 * A net.Server that runs `script` for each connection. The script talks IMAP line
 * by line (or command by command); `standardLogin` in reliability.ts answers the
 * greeting and LOGIN like a server would, for scripts that only misbehave later.
 * A script that throws destroys its connection.
 */
export async function startFakeServer(script: (c: FakeConn, index: number) => Promise<void>): Promise<FakeServer> {
  const connections: FakeConn[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    let buf = ''; // latin1: one char per byte, so literals can be cut by length
    let recorded = 0; // how much of buf `received` has split into lines (chars from buf's start)
    let waiter: (() => void) | undefined;
    let closed = false;
    socket.setEncoding('latin1');
    socket.on('data', (s: string) => {
      buf += s;
      let nl;
      while ((nl = buf.indexOf('\r\n', recorded)) >= 0) {
        conn.received.push(buf.slice(recorded, nl));
        recorded = nl + 2;
      }
      waiter?.();
    });
    socket.on('close', () => {
      closed = true;
      sockets.delete(socket);
      waiter?.();
    });
    /** Waits until `ready()` holds (data arrives) or the deadline passes. */
    const until = async (ready: () => boolean, timeoutMs: number, what: string): Promise<void> => {
      const deadline = Date.now() + scaled(timeoutMs);
      while (!ready()) {
        if (closed) throw new Error('fake server: connection closed');
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`fake server: no ${what} from the proxy`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiter = () => {
            clearTimeout(timer);
            waiter = undefined;
            resolve();
          };
        });
      }
    };
    /** Takes `n` chars from the front of buf (keeping `recorded` in step). */
    const take = (n: number): string => {
      const out = buf.slice(0, n);
      buf = buf.slice(n);
      recorded = Math.max(0, recorded - n);
      return out;
    };
    const readLine = async (timeoutMs = 10_000): Promise<string> => {
      await until(() => buf.includes('\r\n'), timeoutMs, 'line');
      const line = take(buf.indexOf('\r\n'));
      take(2);
      return line;
    };
    const conn: FakeConn = {
      socket,
      received: [],
      readLine,
      async readCommand(timeoutMs = 10_000) {
        let command = '';
        for (;;) {
          const line = await readLine(timeoutMs);
          const lit = LITERAL_AT_END.exec(line);
          if (!lit) return Buffer.from(command + line, 'latin1').toString('utf8');
          const n = Number(lit[1]);
          if (!lit[2]) conn.send('+ OK\r\n');
          await until(() => buf.length >= n, timeoutMs, `literal of ${n} bytes`);
          command += `${line}\r\n${take(n)}`;
        }
      },
      send(text: string) {
        if (!socket.destroyed) socket.write(text);
      },
    };
    connections.push(conn);
    script(conn, connections.length - 1).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen({ host: LOOPBACK, port: 0 }, () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// One test per server of the matrix (Dovecot, Cyrus, Courier), each against
// its own server and our proxy in front of it, started once per test file.
// A server that cannot run here makes its tests report a skip with the
// reason, never a pass.
//
//   const matrix = serverMatrix({ proxyConf: 'enable_select_cache yes' });
//   matrix.test('LOGIN and reuse', async (t, { server, proxy }) => { ... });
import test, { type ExecutionContext } from 'ava';
import { SERVER_KINDS, serverMissing, startImapServer, type ImapServer, type ServerKind, type StartOptions } from './imap-servers.js';
import { startProxy, type Proxy } from './proxy.js';

export interface MatrixSetup {
  kind: ServerKind;
  server: ImapServer;
  proxy: Proxy;
}

export interface MatrixOptions extends StartOptions {
  /** Extra imapproxyd configuration, or a function of the server. */
  proxyConf?: string | ((server: ImapServer) => string);
  /** Only these servers (default all three). */
  kinds?: readonly ServerKind[];
}

export interface Matrix {
  /** `notFor`: servers this test does not apply to, with the reason its skip reports. */
  test(title: string, fn: (t: ExecutionContext, s: MatrixSetup) => Promise<void>, notFor?: Partial<Record<ServerKind, string>>): void;
  /** The setup of one server (after the before hook), for tests of their own. */
  setup(kind: ServerKind): MatrixSetup | undefined;
}

export function serverMatrix(opts: MatrixOptions = {}): Matrix {
  const kinds = opts.kinds ?? SERVER_KINDS;
  const setups = new Map<ServerKind, MatrixSetup>();
  const failures = new Map<ServerKind, Error>();
  test.before(async () => {
    await Promise.all(kinds.filter((k) => serverMissing(k) === null).map(async (kind) => {
      let server: ImapServer | undefined;
      try {
        server = await startImapServer(kind, { users: opts.users ?? 12, ...opts });
        const extra = typeof opts.proxyConf === 'function' ? opts.proxyConf(server) : opts.proxyConf ?? '';
        const proxy = await startProxy({ serverPort: server.port, extraConf: extra });
        setups.set(kind, { kind, server, proxy });
      } catch (err) {
        // the tests of this server fail with the reason; nothing of it is left running
        failures.set(kind, err as Error);
        await server?.stop().catch(() => {});
      }
    }));
  });
  test.after.always(async () => {
    for (const s of setups.values()) {
      await s.proxy.stop();
      await s.server.stop();
    }
  });
  return {
    test(title, fn, notFor = {}) {
      for (const kind of kinds) {
        const missing = notFor[kind] ?? serverMissing(kind);
        if (missing !== null) {
          test.skip(`${kind}: ${title} (${missing})`, () => {});
          continue;
        }
        test(`${kind}: ${title}`, async (t) => {
          const failed = failures.get(kind);
          if (failed) throw failed;
          await fn(t, setups.get(kind)!);
        });
      }
    },
    setup: (kind) => setups.get(kind),
  };
}

// Issue 18: TLS from the proxy to Dovecot, Cyrus and Courier, where the
// server has it: implicit TLS (server_tls) to Dovecot's and Cyrus's IMAPS
// port, STARTTLS (force_tls) to all three. A pass-through in between records
// what went over the wire: no LOGIN and no password in clear.
import test from 'ava';
import { serverMatrix, type MatrixSetup } from './helpers/server-matrix.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { startTap } from './helpers/tap.js';
import { RawClient } from './helpers/transcript.js';

const matrix = serverMatrix();

async function throughTls(t: import('ava').ExecutionContext, s: MatrixSetup, mode: 'implicit' | 'starttls', user: string): Promise<void> {
  const target = mode === 'implicit' ? s.server.tlsPort! : s.server.port;
  const tap = await startTap(target);
  const conf = mode === 'implicit' ? 'server_tls yes\ntls_verify_server no' : 'force_tls yes\ntls_verify_server no';
  let proxy: Proxy | undefined;
  try {
    proxy = await startProxy({ serverPort: tap.port, extraConf: conf });
    for (const round of [1, 2]) {
      const c = await RawClient.connect(proxy.port, { timeoutMs: 10_000 });
      const r = await c.command(`a1 LOGIN ${user} ${user.replace('user', 'pass')}`);
      t.regex(r.at(-1)!, /^a1 OK User logged in$/, c.describe());
      t.truthy(c.loginCapabilities?.includes('IMAP4rev1'), 'the capabilities after login, read over TLS');
      const sel = await c.command('a2 SELECT INBOX');
      t.regex(sel.at(-1)!, /^a2 OK/);
      t.true(sel.includes(`* ${s.server.inboxCount} EXISTS`), c.describe());
      await c.command('a3 LOGOUT');
      await c.close();
      void round;
    }
    const wire = tap.allSent();
    t.false(wire.includes('LOGIN'), 'no LOGIN in clear');
    t.false(wire.includes(user.replace('user', 'pass')), 'no password in clear');
    if (mode === 'starttls') t.regex(wire, /^\S+ (CAPABILITY\r\n\S+ )?STARTTLS\r\n/);
  } finally {
    await proxy?.stop();
    await tap.close();
  }
}

matrix.test('implicit TLS to the server (server_tls): login, SELECT, reuse; nothing in clear', async (t, s) => {
  await throughTls(t, s, 'implicit', 'user10');
}, { courier: 'the Courier of the harness has STARTTLS only (implicit TLS needs couriertls in front of imaplogin)' });

matrix.test('STARTTLS to the server (force_tls): login, SELECT, reuse; nothing in clear', async (t, s) => {
  await throughTls(t, s, 'starttls', 'user11');
});

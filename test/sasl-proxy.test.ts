// Issue 18: the SASL PLAIN login with a proxy identity (SPEC §4.10:
// auth_sasl_plain_username, auth_sasl_plain_password, auth_shared_secret),
// against the two ways real servers allow it: a Dovecot master user and
// Cyrus's proxyservers. Clients log in with the shared secret; the server
// sees authzid = the client's user, authcid = the proxy identity, with SASL-IR
// where the server has it.
import test from 'ava';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cyrusMissing } from './helpers/cyrus.js';
import { startImapServer, type ImapServer } from './helpers/imap-servers.js';
import { startProxy } from './helpers/proxy.js';
import { waitForCached, waitForLogLines } from './helpers/proxy-log.js';
import { startFakeServer } from './helpers/reliability.js';
import { startTap } from './helpers/tap.js';
import { RawClient } from './helpers/transcript.js';

const PROXY_USER = { user: 'proxyadmin', pass: 'proxy-secret-pw' };
const SHARED = 'shared s3cret';
const SASL_CONF = `auth_sasl_plain_username ${PROXY_USER.user}\nauth_sasl_plain_password ${PROXY_USER.pass}\nauth_shared_secret ${SHARED}`;

/** Dovecot with a master passdb holding the proxy identity (master users: authzid = the user to log in as). */
async function dovecotWithMasterUser(): Promise<{ server: ImapServer; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-master-'));
  await chmod(dir, 0o755);
  const file = path.join(dir, 'master.passwd');
  await writeFile(file, `${PROXY_USER.user}:{PLAIN}${PROXY_USER.pass}\n`, { mode: 0o644 });
  const server = await startImapServer('dovecot', {
    dovecotConf: `passdb {\n  driver = passwd-file\n  master = yes\n  args = scheme=PLAIN ${file}\n}\n`,
  });
  return { server, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

async function expectLoggedInAs(t: import('ava').ExecutionContext, port: number, user: string, password: string, reused: boolean): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    const reply = await c.command(`a1 LOGIN ${user} "${password}"`);
    t.is(reply.at(-1), 'a1 OK User logged in', c.describe());
    t.is(reply.includes('* OK [XPROXYREUSE] IMAP connection reused by imapproxy'), reused, c.describe());
    // the session is the client user's: its own INBOX
    const sel = await c.command('a2 SELECT INBOX');
    t.regex(sel.at(-1)!, /^a2 OK/);
    await c.command('a3 LOGOUT');
  } finally {
    await c.close();
  }
}

const noCyrus = cyrusMissing();

(noCyrus ? test.skip : test)(`Cyrus proxyservers: clients log in with the shared secret, the proxy authenticates as itself for them (SASL-IR)${noCyrus ? ` (${noCyrus})` : ''}`, async (t) => {
  const server = await startImapServer('cyrus', { proxyServers: [PROXY_USER] });
  const tap = await startTap(server.port);
  const proxy = await startProxy({ serverPort: tap.port, extraConf: SASL_CONF }).catch(async (err: unknown) => {
    await tap.close();
    await server.stop();
    throw err;
  });
  try {
    await expectLoggedInAs(t, proxy.port, 'user1', SHARED, false);
    await waitForCached(proxy, 'user1');
    await expectLoggedInAs(t, proxy.port, 'user1', SHARED, true);
    // what the server saw: one AUTHENTICATE PLAIN with the initial response, no LOGIN
    const wire = tap.allSent();
    const auth = /\S+ AUTHENTICATE PLAIN (\S+)\r\n/.exec(wire);
    t.truthy(auth, wire);
    t.is(Buffer.from(auth![1]!, 'base64').toString('utf8'), `user1\0${PROXY_USER.user}\0${PROXY_USER.pass}`);
    t.false(/ LOGIN /.test(wire));
    t.false(wire.includes(SHARED), 'the shared secret never reaches the server');
    // the user's own password is not the shared secret: refused by the proxy, no server login
    const c = await RawClient.connect(proxy.port);
    t.deepEqual(await c.command('b1 LOGIN user2 pass2'), ['b1 NO [AUTHENTICATIONFAILED] LOGIN failed']);
    await c.close();
    await waitForLogLines(proxy, /LOGIN: 'user2' .* failed: shared secret was wrong/);
    t.false(tap.allSent().includes('user2'));
  } finally {
    await proxy.stop();
    await tap.close();
    await server.stop();
  }
});

test('Dovecot master user: clients log in with the shared secret, the proxy authenticates as the master user for them (SASL-IR)', async (t) => {
  const { server, cleanup } = await dovecotWithMasterUser();
  const tap = await startTap(server.port);
  const proxy = await startProxy({ serverPort: tap.port, extraConf: SASL_CONF }).catch(async (err: unknown) => {
    await tap.close();
    await server.stop();
    throw err;
  });
  try {
    await expectLoggedInAs(t, proxy.port, 'user3', SHARED, false);
    await waitForCached(proxy, 'user3');
    await expectLoggedInAs(t, proxy.port, 'user3', SHARED, true);
    await expectLoggedInAs(t, proxy.port, 'user4', SHARED, false);
    const wire = tap.allSent();
    const responses = [...wire.matchAll(/\S+ AUTHENTICATE PLAIN (\S+)\r\n/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'));
    t.deepEqual(responses, [`user3\0${PROXY_USER.user}\0${PROXY_USER.pass}`, `user4\0${PROXY_USER.user}\0${PROXY_USER.pass}`]);
    t.false(wire.includes(SHARED));
  } finally {
    await proxy.stop();
    await tap.close();
    await server.stop();
    await cleanup();
  }
});

test('a server without SASL-IR gets AUTHENTICATE PLAIN, then the response after its "+" (fault injection)', async (t) => {
  const seen: string[] = [];
  const fake = await startFakeServer(async (c) => {
    c.send('* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n');
    for (;;) {
      const line = await c.readLine();
      seen.push(line);
      const [tag, name] = line.split(' ');
      if (name === 'AUTHENTICATE') {
        c.send('* OK untagged before the continuation\r\n+ \r\n');
        seen.push(await c.readLine());
        c.send(`${tag} OK [CAPABILITY IMAP4rev1 IDLE] authenticated\r\n`);
      } else if (name === 'LOGOUT') {
        return void c.socket.end(`* BYE\r\n${tag} OK\r\n`);
      } else {
        c.send(`* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n${tag} OK done\r\n`);
      }
    }
  });
  const proxy = await startProxy({ serverPort: fake.port, extraConf: SASL_CONF });
  try {
    const c = await RawClient.connect(proxy.port);
    t.deepEqual(await c.command(`a1 LOGIN user5 "${SHARED}"`), ['* OK untagged before the continuation', 'a1 OK User logged in'], c.describe());
    await c.close();
    const at = seen.findIndex((l) => / AUTHENTICATE PLAIN$/.test(l));
    t.true(at >= 0, seen.join('\n'));
    t.is(Buffer.from(seen[at + 1]!, 'base64').toString('utf8'), `user5\0${PROXY_USER.user}\0${PROXY_USER.pass}`);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('only some of the three options set: the daemon refuses to start and says which are missing', async (t) => {
  const err = await startProxy({ serverPort: 1, extraConf: `auth_sasl_plain_username ${PROXY_USER.user}` }).then(
    async (p) => { await p.stop(); return null; },
    (e: Error) => e,
  );
  t.truthy(err, 'the daemon started');
  t.regex(err!.message, /SASL PLAIN proxy login needs auth_sasl_plain_username, auth_sasl_plain_password and auth_shared_secret together; missing auth_sasl_plain_password, auth_shared_secret/);
});

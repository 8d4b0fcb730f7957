// Issue 16 (findings 4, 5 and 7): what an unauthenticated or hostile client
// can cost everyone else. A client streaming after the proxy's BYE, login
// names with control bytes, one user filling the pool, and idle connections
// to the metrics port. Each test runs its own daemon in front of one Dovecot.
import test from 'ava';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { loginWorks, withProxy as withProxyOn, type Proxy } from './helpers/proxy.js';
import { getFreePorts, LOOPBACK } from './helpers/ports.js';
import { runCtl } from './helpers/ctl.js';
import { eventually, waitForCached, waitForLogLines } from './helpers/proxy-log.js';
import { Bare, rssKb, rssSampler } from './helpers/reliability.js';
import { RawClient } from './helpers/transcript.js';

let dovecot: Dovecot;

test.before(async () => {
  dovecot = await startDovecot({ users: 12 });
});

test.after.always(async () => {
  await dovecot?.stop();
});

/** Our daemon in front of the test Dovecot for the duration of `body`. */
function withProxy(extraConf: string, body: (p: Proxy) => Promise<void>): Promise<void> {
  return withProxyOn(dovecot.port, extraConf, body);
}

/**
 * Streams one endless line; returns how many bytes the kernel took from us
 * before the connection went away (a write then fails) or `limit` was reached.
 */
async function streamLine(c: Bare, limit: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x78);
  let flushed = 0;
  try {
    await c.write('a1 NOOP ');
    while (flushed < limit && !c.closed) {
      await c.write(chunk);
      flushed += chunk.length;
    }
  } catch {
    // reset by the proxy: the end of the stream
  }
  return flushed;
}

test('pre-login: after `* BYE line longer than ...` the proxy stops reading; streaming clients cost neither memory nor other logins', async (t) => {
  await withProxy('', async (p) => {
    const before = rssKb(p.pid);
    const sampler = rssSampler(p.pid);
    // allowHalfOpen: the client does not stop sending when the proxy closes its side
    const clients = await Promise.all([1, 2, 3, 4].map(() => Bare.connect(p.port, { allowHalfOpen: true })));
    const limit = 96 * 1024 * 1024;
    const streams = clients.map((c) => streamLine(c, limit));
    for (const c of clients) await c.waitFor('* BYE line longer than 8192 bytes\r\n', 15_000);
    t.true(await loginWorks(p, 'user1'), 'a normal login works while they stream');
    const flushed = await Promise.all(streams);
    const peak = sampler.stop();
    t.log(`bytes each client got into the proxy's socket: ${flushed.map((n) => (n / 1e6).toFixed(1)).join(', ')} MB; RSS ${before} -> peak ${peak} KiB`);
    // Once the proxy stops reading, only the kernel's socket buffers (the
    // client's send buffer, at most tcp_wmem's 4 MiB, and the proxy's receive
    // window) take more: before the fix it read and re-concatenated
    // everything until it destroyed the socket 5 s later.
    const sendBufferMax = Number(readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').trim().split(/\s+/)[2]);
    for (const n of flushed) t.true(n < sendBufferMax + 2 * 1024 * 1024, `the proxy kept reading after its BYE (${n} bytes taken)`);
    t.true(peak - before < 32 * 1024, `RSS grew by ${peak - before} KiB`);
    for (const c of clients) {
      await c.closedPromise;
      t.regex(c.text(), /\* BYE line longer than 8192 bytes\r\n$/);
    }
    await waitForLogLines(p, /client 127\.0\.0\.1:\d+: line longer than 8192 bytes: closing$/, 4);
    t.true(await loginWorks(p, 'user2'));
    // a client leaving in the middle of AUTHENTICATE is not an internal error
    const auth = await Bare.connect(p.port);
    await auth.write('a2 AUTHENTICATE PLAIN\r\n');
    await auth.waitFor('+ \r\n');
    auth.destroy();
    t.true(await loginWorks(p, 'user3'));
    t.deepEqual(p.log().filter((l) => /internal error/i.test(l)), []);
  });
});

test('max_server_connections_per_user: a tagged NO [LIMIT] without a server login when one user holds its share in use; a cached one of another password makes room', async (t) => {
  await withProxy('max_server_connections_per_user 2', async (p) => {
    const before = await dovecot.loginCount('user3');
    const a = await RawClient.connect(p.port);
    const b = await RawClient.connect(p.port);
    t.is((await a.command('a1 LOGIN user3 pass3')).at(-1), 'a1 OK User logged in');
    t.is((await b.command('b1 LOGIN user3 pass3')).at(-1), 'b1 OK User logged in');
    const c = await RawClient.connect(p.port);
    t.deepEqual(await c.command('c1 LOGIN user3 pass3'), ['c1 NO [LIMIT] LOGIN failed: too many connections for this user']);
    await waitForLogLines(p, /LOGIN: 'user3' \(127\.0\.0\.1:\d+\) failed: max_server_connections_per_user 2 reached$/);
    t.is(await dovecot.loginCount('user3'), before + 2, 'no server connection was opened for the refused login');
    t.true(await loginWorks(p, 'user4'), 'other users are not affected');
    // one session ends: its connection is cached and serves the next login
    await a.command('a2 LOGOUT');
    await waitForCached(p, 'user3');
    t.is((await c.command('c2 LOGIN user3 pass3')).at(-1), 'c2 OK User logged in');
    await c.command('c3 LOGOUT');
    await waitForCached(p, 'user3', 2);
    // a cached connection logged in with another password cannot serve this
    // login: it is closed to make room rather than refusing the login
    const wrong = await RawClient.connect(p.port);
    t.regex((await wrong.command('w1 LOGIN user3 wrong')).at(-1)!, /^w1 NO /);
    await waitForLogLines(p, /Expiring server sd \[\d+\] to make room \(max_server_connections_per_user 2 reached for user 'user3'\)$/);
    await wrong.close();
    await b.command('b2 LOGOUT');
    for (const x of [a, b, c]) await x.close();
    // other spellings of the name are the same account at the server: they share its limit
    const flushed = await runCtl(['-f', p.confFile, 'flush']);
    t.is(flushed.code, 0);
    const x = await RawClient.connect(p.port);
    const y = await RawClient.connect(p.port);
    const z = await RawClient.connect(p.port);
    t.is((await x.command('x1 LOGIN User8 pass8')).at(-1), 'x1 OK User logged in');
    t.is((await y.command('y1 LOGIN USER8 pass8')).at(-1), 'y1 OK User logged in');
    t.deepEqual(await z.command('z1 LOGIN user8 pass8'), ['z1 NO [LIMIT] LOGIN failed: too many connections for this user']);
    for (const w of [x, y, z]) await w.close();
  });
});

/** One HTTP/1.1 GET on its own connection; resolves with the status (rejects when the connection is refused or reset). */
function scrape(port: number, socket?: net.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: LOOPBACK, port, path: '/metrics', agent: false, ...(socket ? { createConnection: () => socket } : {}), headers: { Connection: 'keep-alive' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('metrics: 64 idle connections (keep-alive after a scrape, or silent) do not block the next scrape', async (t) => {
  const [metricsPort] = (await getFreePorts(1)) as [number];
  await withProxy(`metrics_listen_port ${metricsPort}`, async (p) => {
    await waitForLogLines(p, new RegExp(`metrics on http://127\\.0\\.0\\.1:${metricsPort}/metrics$`), 1, 10_000);
    const idle: net.Socket[] = [];
    const connect = () =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: LOOPBACK, port: metricsPort });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
    // 32 keep-alive connections that scraped once and stay open, 40 that never say anything
    for (let i = 0; i < 32; i++) {
      const s = await connect();
      s.on('error', () => {});
      idle.push(s);
      t.is(await scrape(metricsPort, s), 200);
    }
    for (let i = 0; i < 40; i++) {
      const s = await connect();
      s.on('error', () => {});
      idle.push(s);
    }
    for (let i = 0; i < 3; i++) t.is(await scrape(metricsPort), 200, `scrape ${i} with ${idle.length} idle connections open`);
    const stillOpen = idle.filter((s) => !s.destroyed && !s.readableEnded).length;
    t.log(`${stillOpen} of ${idle.length} idle connections still open`);
    for (const s of idle) s.destroy();
  });
});

test('names: control bytes in a login name get a tagged NO before any server connection; client text is shown escaped in the log, XPROXY_TRACE, the trace file and imapproxyctl', async (t) => {
  await withProxy('enable_admin_commands yes', async (p) => {
    const c = await RawClient.connect(p.port);
    const refused = 'NO [AUTHENTICATIONFAILED] LOGIN failed: invalid characters in user name';
    // a literal can carry anything: NUL, CR LF (a forged log line), ESC
    for (const [i, name] of ['user1\0admin', "user1\r\nimapproxyd[1]: LOGIN: 'root'", 'user1\u001b[2J', 'user1\u007f'].entries()) {
      const bytes = Buffer.from(name, 'utf8');
      await c.sendRaw(`n${i} LOGIN {${bytes.length}+}\r\n`);
      await c.sendRaw(Buffer.concat([bytes, Buffer.from(' pass1\r\n')]));
      t.deepEqual(await c.readUntilTagged(`n${i}`), [`n${i} ${refused}`], JSON.stringify(name));
    }
    // AUTHENTICATE PLAIN: authzid NUL authcid NUL password, with a TAB in the name
    const plain = Buffer.from('\0user1\tx\0pass1').toString('base64');
    t.deepEqual(await c.command(`n9 AUTHENTICATE PLAIN ${plain}`), ['n9 NO [AUTHENTICATIONFAILED] AUTHENTICATE failed: invalid characters in user name']);
    t.is((await c.command('n10 LOGIN user1 pass1')).at(-1), 'n10 OK User logged in', 'the connection goes on');
    await c.command('n11 LOGOUT');
    await c.close();
    const lines = await waitForLogLines(p, /refused: control character in the user name$/, 5);
    t.true(lines.some((l) => l.includes("LOGIN: 'user1\\x0d\\x0aimapproxyd[1]: LOGIN: 'root'' (127.0.0.1:")), lines.join('\n'));
    t.false(p.log().some((l) => l.startsWith('imapproxyd[1]')), 'no forged log line');
    t.is(p.log().filter((l) => /no previous connection: creating a new one$/.test(l)).length, 1, 'only the good login reached the server');

    // A quoted string may hold ESC: an admin client names a user with one
    const admin = await RawClient.connect(p.port);
    t.deepEqual(await admin.command('x1 XPROXY_TRACE "ev\u001b]0;owned\u0007il"'), ['x1 OK Tracing enabled for user ev\\x1b]0;owned\\x07il.']);
    await admin.close();
    const list = await runCtl(['-f', p.confFile, 'trace']);
    t.is(list.stdout, 'traced: ev\\x1b]0;owned\\x07il\n');
    const json = await runCtl(['-f', p.confFile, '--json', 'trace']);
    t.false(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(json.stdout), json.stdout);
    t.deepEqual((JSON.parse(json.stdout) as { traced: string[] }).traced, ['ev\u001b]0;owned\u0007il']);
    const { readFile } = await import('node:fs/promises');
    const trace = await eventually('the marker written', async () => {
      const x = await readFile(`${p.dir}/protocol.log`, 'latin1');
      return x.includes('PROXY: user tracing enabled.') ? x : undefined;
    });
    t.true(trace.includes(' ev\\x1b]0;owned\\x07il PROXY: user tracing enabled.'), JSON.stringify(trace));
    t.false(p.log().some((l) => /[\u0000-\u001f\u007f-\u009f]/.test(l)), 'no control character in any log line');
    // an admin command with a literal ends the session inside the parser's callback: the bytes
    // not parsed yet are dropped with it, and nothing is read from them afterwards
    const dropped = await RawClient.connect(p.port);
    await dropped.send('l1 XPROXY_TRACE {5}');
    t.deepEqual(await dropped.expectClosed(), []);
    await dropped.close();
    t.false(p.log().some((l) => /internal error/i.test(l)), p.log().filter((l) => /internal error/i.test(l)).join('\n'));
  });
});

test('names: imapproxyctl flush USER closes every spelling the server takes for the account (user_match_exact for byte-for-byte)', async (t) => {
  for (const exact of [false, true]) {
    await withProxy(exact ? 'user_match_exact yes' : '', async (p) => {
      t.is((await runCtl(['-f', p.confFile, 'trace', 'User6'])).code, 0);
      for (const [i, name] of ['User6', 'USER6', 'user6'].entries()) {
        const c = await RawClient.connect(p.port);
        t.is((await c.command(`l${i} LOGIN ${name} pass6`)).at(-1), `l${i} OK User logged in`, name);
        await c.command(`o${i} LOGOUT`);
        await c.close();
        await waitForCached(p, name);
      }
      const r = await runCtl(['-f', p.confFile, '--json', 'flush', 'user6']);
      t.is((JSON.parse(r.stdout) as { closed: number }).closed, exact ? 1 : 3, r.stdout);
      if (exact) {
        const rest = await runCtl(['-f', p.confFile, '--json', 'flush', 'USER6']);
        t.is((JSON.parse(rest.stdout) as { closed: number }).closed, 1);
      }
      // trace USER: the sessions of every spelling (the trace starts after the login)
      const { readFile } = await import('node:fs/promises');
      const traced = await eventually('the last session traced', async () => {
        const x = await readFile(`${p.dir}/protocol.log`, 'latin1');
        return x.includes(exact ? 'o0 LOGOUT' : 'o2 LOGOUT') ? x : undefined;
      });
      t.deepEqual(['o0', 'o1', 'o2'].filter((tag) => traced.includes(`${tag} LOGOUT`)), exact ? ['o0'] : ['o0', 'o1', 'o2']);
      const off = await runCtl(['-f', p.confFile, '--json', 'trace', '--off', 'user6']);
      t.deepEqual((JSON.parse(off.stdout) as { removed: string[] }).removed, exact ? [] : ['User6']);
    });
  }
});

// Issue 10, part 1: several servers in server_hostname, against two real
// Dovecots. Users are spread by rendezvous hashing and stay on their server;
// when it dies its users go to the other one (after a failed connect or a
// health check) and come back once a health check finds it up again;
// imapproxyctl servers shows it. Which server a login reached is read from
// the Dovecots' own logs.

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { rendezvousOrder } from '@imapproxy/proxy/backend/rendezvous';
import { ctlJson, runCtl } from './helpers/ctl.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { getFreePort } from './helpers/ports.js';
import { IMAPPROXYD, proxyFor, type Proxy } from './helpers/proxy.js';
import { eventually, waitForCached } from './helpers/proxy-log.js';
import { RawClient } from './helpers/transcript.js';

const USERS = 16;
let d1: Dovecot;
let d2: Dovecot;

test.before(async () => {
  [d1, d2] = await Promise.all([startDovecot({ users: USERS }), startDovecot({ users: USERS })]);
});

test.after.always(async () => {
  await Promise.all([d1?.stop(), d2?.stop()]);
});

const nameOf = (d: Dovecot): string => `127.0.0.1:${d.port}`;

/** Successful logins per user in a Dovecot's log. */
async function logins(d: Dovecot): Promise<Map<string, number>> {
  const text = await readFile(d.logFile, 'utf8').catch(() => '');
  const out = new Map<string, number>();
  for (const m of text.matchAll(/imap-login: (?:Info: )?Login: user=<([^>]*)>/g)) out.set(m[1]!, (out.get(m[1]!) ?? 0) + 1);
  return out;
}

/** Waits until the two logs together show `total` logins (Dovecot's log process may lag the OK a little). */
async function loginsWhen(total: number): Promise<[Map<string, number>, Map<string, number>]> {
  return eventually(`${total} logins in the Dovecot logs`, async () => {
    const both: [Map<string, number>, Map<string, number>] = [await logins(d1), await logins(d2)];
    const n = [...both[0].values(), ...both[1].values()].reduce((a, b) => a + b, 0);
    return n >= total ? both : undefined;
  }, 10_000);
}

async function loginLogout(proxy: Proxy, user: string, pass: string): Promise<string[]> {
  const c = await RawClient.connect(proxy.port, { timeoutMs: 15_000 });
  try {
    const reply = await c.command(`a1 LOGIN ${user} ${pass}`);
    await c.command('a2 LOGOUT');
    return reply;
  } finally {
    await c.close();
  }
}

interface ServersAnswer {
  servers: Array<{ name: string; state: 'up' | 'down'; lastError: string | null; active: number; cached: number; loginsRouted: number; addresses: string[] }>;
  healthInterval: number;
}

const userOn = (names: string[], home: string, skip: string[] = []): number => {
  for (let i = 1; i <= USERS; i++) {
    if (!skip.includes(`user${i}`) && names[rendezvousOrder(names, `user${i}`)[0]!] === home) return i;
  }
  throw new Error(`no user has ${home} first`);
};

test.serial('users are spread over both servers and each one always lands on the same server', async (t) => {
  const names = [nameOf(d1), nameOf(d2)];
  const proxy = await proxyFor(t, { serverPort: d1.port, extraConf: [`server_hostname ${names.join(' ')}`, 'cache_expiration_time 0'].join('\n') });
  const [before1, before2] = [await logins(d1), await logins(d2)];
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  for (let round = 0; round < 2; round++) {
    for (let i = 1; i <= USERS; i++) t.deepEqual(await loginLogout(proxy, `user${i}`, `pass${i}`), ['a1 OK User logged in']);
  }
  const [after1, after2] = await loginsWhen(total(before1) + total(before2) + 2 * USERS);
  const spread = [0, 0];
  for (let i = 1; i <= USERS; i++) {
    const u = `user${i}`;
    const on = [(after1.get(u) ?? 0) - (before1.get(u) ?? 0), (after2.get(u) ?? 0) - (before2.get(u) ?? 0)];
    // both logins on one server, the one rendezvous hashing names first
    const home = rendezvousOrder(names, u)[0]!;
    t.deepEqual(on, home === 0 ? [2, 0] : [0, 2], `${u} should be on ${names[home]}`);
    spread[home]!++;
  }
  t.true(spread[0]! > 0 && spread[1]! > 0, `users per server: ${spread.join(', ')}`);

  const answer = await ctlJson<ServersAnswer>(proxy.confFile, 'servers');
  t.deepEqual(answer.servers.map((s) => [s.name, s.state, s.loginsRouted, s.addresses]), [
    [names[0], 'up', 2 * spread[0]!, ['127.0.0.1']],
    [names[1], 'up', 2 * spread[1]!, ['127.0.0.1']],
  ]);
  t.is(answer.healthInterval, 10);
});

test.serial('a server that dies: its users go to the other one, ctl shows it down; back up: they come back', async (t) => {
  const names = [nameOf(d1), nameOf(d2)];
  const proxy = await proxyFor(t, { serverPort: d1.port, extraConf: [`server_hostname ${names.join(',')}`, 'server_health_interval 1', 'server_health_timeout 2'].join('\n') });
  const a = userOn(names, names[0]!); // lives on d1
  const b = userOn(names, names[1]!); // lives on d2
  const ua = `user${a}`;
  const ub = `user${b}`;
  const count = async (d: Dovecot, u: string) => (await logins(d)).get(u) ?? 0;
  const a1 = await count(d1, ua);
  const a2 = await count(d2, ua);

  t.deepEqual(await loginLogout(proxy, ua, `pass${a}`), ['a1 OK User logged in']);
  await waitForCached(proxy, ua, 1);
  await eventually('the login on d1', async () => ((await count(d1, ua)) === a1 + 1 ? true : undefined));
  const dump = await ctlJson<{ connections: Array<{ user: string; server: string }>; servers: string[] }>(proxy.confFile, 'dump');
  t.deepEqual(dump.connections.map((c) => [c.user, c.server]), [[ua, names[0]]]);
  t.deepEqual(dump.servers, names);
  const dumpText = await runCtl(['-f', proxy.confFile, 'dump']);
  t.log(`imapproxyctl dump:\n${dumpText.stdout}`);
  t.regex(dumpText.stdout.split('\n')[0]!, /^ID +USER +STATE +SERVER +CLIENT +AGE +IDLE +REUSED +TRANSPORT$/);
  t.true(dumpText.stdout.split('\n').some((l) => new RegExp(`^\\d+ +${ua} +cached +${names[0]} `).test(l)), dumpText.stdout);

  await d1.kill();
  // Should an assertion below fail, the later tests still get d1 back.
  let d1Back = false;
  t.teardown(async () => {
    if (!d1Back) await d1.restart();
  });
  // Whichever comes first, the health check or this login's failed connect, marks d1 down.
  t.deepEqual(await loginLogout(proxy, ua, `pass${a}`), ['a1 OK User logged in']);
  await eventually('the login on d2', async () => ((await count(d2, ua)) === a2 + 1 ? true : undefined));
  await proxy.waitForLog(new RegExp(`warning: server ${names[0]} is down: `), 10_000);
  // d2's users are not moved
  t.deepEqual(await loginLogout(proxy, ub, `pass${b}`), ['a1 OK User logged in']);
  await waitForCached(proxy, ua, 2);
  await waitForCached(proxy, ub, 1);

  const down = await ctlJson<ServersAnswer>(proxy.confFile, 'servers');
  t.like(down.servers[0], { name: names[0], state: 'down', cached: 0 });
  // Refused, or reset when a health check's connect reached Dovecot while it was going down.
  t.regex(down.servers[0]!.lastError ?? '', /ECONNREFUSED|ECONNRESET/);
  t.like(down.servers[1], { name: names[1], state: 'up', active: 0, cached: 2, lastError: null });
  const text = await runCtl(['-f', proxy.confFile, 'servers']);
  t.is(text.code, 0);
  t.log(`imapproxyctl servers:\n${text.stdout}`);
  const lines = text.stdout.split('\n');
  t.regex(lines[0]!, /^SERVER +STATE +FOR +ADDRESSES +ACTIVE +CACHED +LOGINS +LAST ERROR$/);
  t.regex(lines[1]!, new RegExp(`^${names[0]} +down +\\d+s +127\\.0\\.0\\.1 +0 +0 +1 +.*ECONN(REFUSED|RESET)`));
  t.regex(lines[2]!, new RegExp(`^${names[1]} +up +\\S+ +127\\.0\\.0\\.1 +0 +2 +2 +-$`));
  t.is(lines[3], 'health checks every 1 s');

  await d1.restart();
  d1Back = true;
  await proxy.waitForLog(new RegExp(`notice: server ${names[0]} is up again$`), 15_000);
  // ua's cached connection on d2 is not reused: ua goes home to d1
  t.deepEqual(await loginLogout(proxy, ua, `pass${a}`), ['a1 OK User logged in']);
  await eventually('the login on d1 again', async () => ((await count(d1, ua)) === a1 + 2 ? true : undefined));
  t.is(await count(d2, ua), a2 + 1);
  t.true(proxy.log().some((l) => new RegExp(`Expiring server sd \\[\\d+\\] \\(user '${ua}' goes to server ${names[0]} now\\)`).test(l)));
  const up = await ctlJson<ServersAnswer>(proxy.confFile, 'servers');
  t.deepEqual(up.servers.map((s) => s.state), ['up', 'up']);
});

test.serial('without health checks, a failed connect marks the server down and its users fail over at once', async (t) => {
  const dead = await getFreePort(); // nothing listens there
  const names = [nameOf(d1), `127.0.0.1:${dead}`];
  const proxy = await proxyFor(t, { serverPort: d1.port, extraConf: [`server_hostname ${names.join(' ')}`, 'server_health_interval 0', 'cache_expiration_time 0'].join('\n') });
  const skip: string[] = [];
  const x = userOn(names, names[1]!);
  skip.push(`user${x}`);
  const y = userOn(names, names[1]!, skip);
  for (const i of [x, y, x]) t.deepEqual(await loginLogout(proxy, `user${i}`, `pass${i}`), ['a1 OK User logged in']);
  const answer = await ctlJson<ServersAnswer & { servers: Array<{ connectFailures: number }> }>(proxy.confFile, 'servers');
  t.like(answer.servers[1], { name: names[1], state: 'down', loginsRouted: 0 });
  // only the first login tried the dead server; the others went to d1 directly
  t.is((answer.servers[1] as { connectFailures: number }).connectFailures, 1);
  t.like(answer.servers[0], { state: 'up', loginsRouted: 3 });
  t.is(answer.healthInterval, 0);
  t.is(proxy.log().filter((l) => l.includes(`server ${names[1]} is down`)).length, 1);
});

test.serial('an entry whose name does not resolve: its users go to the other server, ctl names the DNS failure', async (t) => {
  // .invalid never resolves (RFC 6761). connect_timeout bounds the lookup too,
  // should this machine's resolver not answer at all.
  const names = [nameOf(d1), 'nowhere.invalid:143'];
  const proxy = await proxyFor(t, { serverPort: d1.port, extraConf: [`server_hostname ${names.join(' ')}`, 'server_health_interval 0', 'connect_timeout 3'].join('\n') });
  const x = userOn(names, names[1]!);
  t.deepEqual(await loginLogout(proxy, `user${x}`, `pass${x}`), ['a1 OK User logged in']);
  const answer = await ctlJson<ServersAnswer & { servers: Array<{ dnsError: string | null }> }>(proxy.confFile, 'servers');
  t.like(answer.servers[0], { name: names[0], state: 'up', loginsRouted: 1, dnsError: null });
  t.like(answer.servers[1], { name: names[1], state: 'down', loginsRouted: 0, addresses: [] });
  const dnsError = answer.servers[1]!.dnsError ?? '';
  t.regex(dnsError, /nowhere\.invalid/);
  const text = await runCtl(['-f', proxy.confFile, 'servers']);
  const line = text.stdout.split('\n').find((l) => l.startsWith(names[1]!)) ?? '';
  t.true(line.includes(`DNS: ${dnsError}`), text.stdout);
});

test('a bad server_hostname entry stops the daemon with file:line', async (t) => {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-ts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const conf = path.join(dir, 'imapproxy.conf');
  await writeFile(conf, 'server_port 143\nserver_hostname imap1.example.org imap2.example.org:99999\n');
  const r = spawnSync(process.execPath, [IMAPPROXYD, '-t', '-f', conf], { encoding: 'utf8' });
  t.is(r.status, 78);
  t.regex(r.stderr, new RegExp(`${conf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: .*server_hostname.*99999`));
});

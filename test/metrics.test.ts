// Issue 10, part 4: the Prometheus endpoint (docs/metrics.md). Our daemon in
// front of a real Dovecot with metrics_listen_port set: logins through the
// proxy, then what GET /metrics says about them; plus the endpoint's HTTP
// behaviour, the exposition text's syntax, and no listener by default.
//
// The registry is also built in-process (PrometheusMetrics with a
// StatsRegistry and a stand-in pool) for what is easier to check without a
// daemon: counters across RESETCOUNTERS, the pool gauge per server.
import test from 'ava';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { StatsRegistry } from '@imapproxy/shared';
import { PrometheusMetrics } from '@imapproxy/proxy/metrics/prometheus-metrics';
import { runCtl } from './helpers/ctl.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { getFreePorts, LOOPBACK } from './helpers/ports.js';
import { familyOf, parseExposition, sampleValue, type Exposition } from './helpers/prometheus-text.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { eventually, waitForCached, waitForLogLines } from './helpers/proxy-log.js';
import { RawClient } from './helpers/transcript.js';

const REUSE = '* OK [XPROXYREUSE] IMAP connection reused by imapproxy';

let dovecot: Dovecot;
let proxy: Proxy;
let metricsPort: number;

test.before(async () => {
  dovecot = await startDovecot({ users: 5 });
  [metricsPort] = (await getFreePorts(1)) as [number];
  proxy = await startProxy({ serverPort: dovecot.port, extraConf: `metrics_listen_port ${metricsPort}` });
  await waitForLogLines(proxy, new RegExp(`metrics on http://127\\.0\\.0\\.1:${metricsPort}/metrics$`), 1, 10_000);
});

test.after.always(async () => {
  await proxy?.stop();
  await dovecot?.stop();
});

const url = (path = '/metrics'): string => `http://${LOOPBACK}:${metricsPort}${path}`;

async function scrape(): Promise<Exposition> {
  const res = await fetch(url());
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return parseExposition(await res.text());
}

/** `a1 LOGIN`, then LOGOUT when it worked; returns the LOGIN reply. */
async function loginLogout(user: string, pass: string): Promise<string[]> {
  const c = await RawClient.connect(proxy.port, { timeoutMs: 30_000 });
  try {
    const reply = await c.command(`a1 LOGIN ${user} ${pass}`);
    if (reply.at(-1)?.startsWith('a1 OK')) {
      await c.command('a2 LOGOUT');
      await c.expectClosed();
    }
    return reply;
  } finally {
    await c.close();
  }
}

/** Daemon's listening TCP sockets: its socket inodes found in LISTEN state in /proc/net/tcp{,6}. */
async function listeningSockets(pid: number): Promise<number> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]!);
  }
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const rows = (await readFile(table, 'latin1').catch(() => '')).split('\n').slice(1);
    for (const row of rows) {
      const cols = row.trim().split(/\s+/);
      if (cols[3] === '0A' && inodes.has(cols[9]!)) n++;
    }
  }
  return n;
}

test.serial('logins: the histogram by result, the counters, the pool gauge; counters survive reset-counters', async (t) => {
  t.deepEqual(await loginLogout('user1', 'pass1'), ['a1 OK User logged in']);
  await waitForCached(proxy, 'user1', 1, 10_000);
  t.deepEqual(await loginLogout('user1', 'pass1'), [REUSE, 'a1 OK User logged in']);
  await waitForCached(proxy, 'user1', 2, 10_000);
  t.deepEqual(await loginLogout('user2', 'wrong'), ['a1 NO [AUTHENTICATIONFAILED] Authentication failed.']);

  // the client connections close a little after the replies: poll until the gauge says so
  const m = await eventually('no client connection left', async () => {
    const e = await scrape();
    return sampleValue(e, 'imapproxy_client_connections') === 0 ? e : undefined;
  }, 10_000);
  const count = (result: string) => sampleValue(m, 'imapproxy_login_duration_seconds_count', { result });
  t.deepEqual({ reused: count('reused'), new: count('new'), failed: count('failed') }, { reused: 1, new: 1, failed: 1 });
  t.is(sampleValue(m, 'imapproxy_login_duration_seconds_bucket', { result: 'new', le: '+Inf' }), 1);
  t.true(sampleValue(m, 'imapproxy_login_duration_seconds_sum', { result: 'new' })! > 0);
  t.is(sampleValue(m, 'imapproxy_client_logins_total'), 2);
  t.is(sampleValue(m, 'imapproxy_server_connections_created_total'), 1);
  t.is(sampleValue(m, 'imapproxy_server_connections_reused_total'), 1);
  t.is(sampleValue(m, 'imapproxy_login_failures_total'), 1);
  t.is(sampleValue(m, 'imapproxy_client_connections_accepted_total'), 3);
  t.true(sampleValue(m, 'imapproxy_client_connections_peak')! >= 1);
  // one server; its label is the server_hostname entry (127.0.0.1, or 127.0.0.1:port where entries carry their port)
  const pool = m.samples.filter((s) => s.name === 'imapproxy_pool_connections');
  const server = pool.find((s) => s.labels.state === 'cached')?.labels.server ?? '';
  t.true(server.startsWith(LOOPBACK), JSON.stringify(pool));
  t.deepEqual(pool.map((s) => [s.labels.server, s.labels.state, s.value]).sort(), [[server, 'active', 0], [server, 'cached', 1]]);
  // the new login's server connection and the failed login's one
  t.is(sampleValue(m, 'imapproxy_server_connect_duration_seconds_count', { server }), 2);
  t.is(sampleValue(m, 'imapproxy_server_connections_cached'), 1);
  t.is(sampleValue(m, 'imapproxy_pool_capacity'), 3072);
  t.is(sampleValue(m, 'imapproxy_up'), 1);
  t.is(m.samples.filter((s) => s.name === 'imapproxy_build_info' && /^\d+\.\d+\.\d+/.test(s.labels.version ?? '') && s.value === 1).length, 1);
  t.true(sampleValue(m, 'process_resident_memory_bytes')! > 0, 'default process metrics');

  // RESETCOUNTERS zeroes the file's totals; a Prometheus counter must not go down
  t.deepEqual(await runCtl(['-f', proxy.confFile, 'reset-counters']), { code: 0, stdout: 'counters reset\n', stderr: '' });
  const after = await scrape();
  t.is(sampleValue(after, 'imapproxy_client_logins_total'), 2);
  t.is(sampleValue(after, 'imapproxy_client_connections_accepted_total'), 3);
  t.is(sampleValue(after, 'imapproxy_client_connections_peak'), 0, 'peaks are gauges and follow the reset');
  t.true(sampleValue(after, 'imapproxy_counters_reset_time_seconds')! >= sampleValue(m, 'imapproxy_counters_reset_time_seconds')!);
});

test('HTTP: content type, 404 elsewhere, 405 for other methods', async (t) => {
  const ok = await fetch(url());
  t.is(ok.status, 200);
  t.is(ok.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  await ok.arrayBuffer();
  for (const path of ['/', '/metrics/', '/favicon.ico', '/metricsx']) {
    const res = await fetch(url(path));
    t.is(res.status, 404, path);
    await res.arrayBuffer();
  }
  t.is((await fetch(url('/metrics?x=1'))).status, 200, 'a query string is ignored');
  const post = await fetch(url(), { method: 'POST', body: 'x' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  await post.arrayBuffer();
  const head = await fetch(url(), { method: 'HEAD' });
  t.is(head.status, 200);
});

test('the exposition text is valid: every line HELP, TYPE or a sample of a typed family', async (t) => {
  const res = await fetch(url());
  const text = await res.text();
  t.true(text.endsWith('\n'));
  const exp = parseExposition(text); // throws on a line of any other kind
  t.true(exp.samples.length > 50);
  for (const s of exp.samples) {
    const family = familyOf(s.name, exp.types);
    t.truthy(family, `${s.name} has a # TYPE`);
    t.true(exp.help.has(family!), `${family} has a # HELP`);
    t.regex(s.name, /^(imapproxy|process|nodejs)_/);
  }
  for (const [name, type] of exp.types) {
    if (name.startsWith('imapproxy_') && name.endsWith('_total')) t.is(type, 'counter', name);
    if (type === 'counter') t.true(name.endsWith('_total'), `counter ${name} ends in _total`);
  }
  t.is(exp.types.get('imapproxy_login_duration_seconds'), 'histogram');
  t.is(exp.types.get('imapproxy_server_connect_duration_seconds'), 'histogram');
  t.is(exp.types.get('imapproxy_pool_connections'), 'gauge');
});

test('off by default: without metrics_listen_port no HTTP listener, no log line', async (t) => {
  const plain = await startProxy({ serverPort: dovecot.port });
  try {
    await waitForLogLines(plain, /normal server startup/, 1, 10_000);
    t.is(await listeningSockets(plain.pid), 1, 'the IMAP listener only');
    t.false(plain.log().some((l) => /metrics/.test(l)), plain.log().join('\n'));
    t.is(await listeningSockets(proxy.pid), 2, 'the one with metrics: IMAP and HTTP');
  } finally {
    await plain.stop();
  }
});

test('unit: counters from the StatsRegistry stay monotonic across resets; pool gauge per server', async (t) => {
  const stats = new StatsRegistry(1_700_000_000);
  const entries: Array<{ state: 'active' | 'cached'; server?: string }> = [];
  const metrics = new PrometheusMetrics(
    { config: { cache_size: 7, server_hostname: 'imap.example' }, stats, pool: { entries: () => entries as never } },
    '9.9.9',
  );
  stats.clientOpened();
  stats.loginSucceeded('new');
  stats.loginSucceeded('reused');
  stats.resync(true);
  metrics.observeLogin('new', 0.02);
  metrics.observeLogin('reused', 0.0001);
  metrics.observeConnect(undefined, 0.01);
  metrics.observeConnect('b.example:143', 0.01);
  entries.push({ state: 'active' }, { state: 'cached', server: 'b.example:143' }, { state: 'cached', server: 'b.example:143' });
  let e = parseExposition(await metrics.render());
  t.is(sampleValue(e, 'imapproxy_client_logins_total'), 2);
  t.is(sampleValue(e, 'imapproxy_resyncs_total', { result: 'ok' }), 1);
  t.is(sampleValue(e, 'imapproxy_resyncs_total', { result: 'failed' }), 0);
  t.is(sampleValue(e, 'imapproxy_login_duration_seconds_count', { result: 'failed' }), 0, 'every result is there from the start');
  t.is(sampleValue(e, 'imapproxy_login_duration_seconds_bucket', { result: 'reused', le: '0.0005' }), 1);
  t.is(sampleValue(e, 'imapproxy_server_connect_duration_seconds_count', { server: 'imap.example' }), 1);
  t.is(sampleValue(e, 'imapproxy_server_connect_duration_seconds_count', { server: 'b.example:143' }), 1);
  t.is(sampleValue(e, 'imapproxy_pool_connections', { server: 'imap.example', state: 'active' }), 1);
  t.is(sampleValue(e, 'imapproxy_pool_connections', { server: 'b.example:143', state: 'cached' }), 2);
  t.is(sampleValue(e, 'imapproxy_pool_capacity'), 7);
  t.is(sampleValue(e, 'imapproxy_build_info', { version: '9.9.9' }), 1);
  t.is(sampleValue(e, 'imapproxy_start_time_seconds'), 1_700_000_000);

  stats.resetCounters(1_700_000_100);
  stats.loginSucceeded('new');
  entries.length = 0;
  e = parseExposition(await metrics.render());
  t.is(stats.snapshot().totalClientLogins, 1, 'the file keeps the reset');
  t.is(sampleValue(e, 'imapproxy_client_logins_total'), 3);
  t.is(sampleValue(e, 'imapproxy_server_connections_created_total'), 2);
  t.is(sampleValue(e, 'imapproxy_counters_reset_time_seconds'), 1_700_000_100);
  t.is(sampleValue(e, 'imapproxy_pool_connections', { server: 'b.example:143', state: 'cached' }), 0, 'a server seen once stays, at 0');
});

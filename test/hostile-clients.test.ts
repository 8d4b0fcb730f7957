// Issue 16 (findings 4, 5 and 7): what an unauthenticated or hostile client
// can cost everyone else. A client streaming after the proxy's BYE, login
// names with control bytes, one user filling the pool, and idle connections
// to the metrics port. Each test runs its own daemon in front of one Dovecot.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { waitForLogLines } from './helpers/proxy-log.js';
import { Bare, rssKb, rssSampler } from './helpers/reliability.js';
import { RawClient } from './helpers/transcript.js';

let dovecot: Dovecot;

test.before(async () => {
  dovecot = await startDovecot({ users: 12 });
});

test.after.always(async () => {
  await dovecot?.stop();
});

async function withProxy(extraConf: string, body: (p: Proxy) => Promise<void>): Promise<void> {
  const p = await startProxy({ serverPort: dovecot.port, extraConf });
  try {
    await body(p);
  } finally {
    await p.stop();
  }
}

/** A normal login still works on `p`: LOGIN, NOOP, LOGOUT. */
async function loginWorks(p: Proxy, user: string): Promise<boolean> {
  const c = await RawClient.connect(p.port);
  try {
    const r = await c.command(`z1 LOGIN ${user} ${user.replace('user', 'pass')}`);
    if (r.at(-1) !== 'z1 OK User logged in') return false;
    if (!/^z2 OK/.test((await c.command('z2 NOOP')).at(-1)!)) return false;
    await c.command('z3 LOGOUT');
    return true;
  } finally {
    await c.close();
  }
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
  });
});

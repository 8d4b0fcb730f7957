// Limits and timeouts (issue 8, part 1): each one enforced with a reason the
// client can read (tagged NO/BAD or `* BYE ...`), a log line, and slow or
// hostile clients costing bounded memory and descriptors. What other files
// already cover is not repeated here: max_line_length after login
// (proxy-relay), login_timeout/server_timeout against a silent server
// (proxy-pool), resync_timeout (faults.test.ts).
//
// Each test runs its own daemon (the limits differ) in front of one Dovecot.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { isAlive } from './helpers/process-tree.js';
import { loginWorks, withProxy as withProxyOn, type Proxy } from './helpers/proxy.js';
import { eventually, waitForLogLines } from './helpers/proxy-log.js';
import { Bare, fdCount, rssKb, rssSampler, statsWhen } from './helpers/reliability.js';
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

test('slowloris: a line or a literal trickled a byte at a time is closed after preauth_idle_timeout; a client that completes commands is not', async (t) => {
  await withProxy('preauth_idle_timeout 2', async (p) => {
    const started = Date.now();
    const line = await Bare.connect(p.port);
    const literal = await Bare.connect(p.port);
    const active = await Bare.connect(p.port);
    await literal.write('l1 LOGIN {100}\r\n');
    await literal.waitFor('+ go ahead\r\n');
    // Every byte resets an inactivity timer, so before the fix both stayed
    // open for as long as they kept trickling.
    /** Trickles until the proxy closes; resolves with the ms from the start to the close. */
    const trickle = async (c: Bare, byte: string): Promise<number> => {
      for (let i = 0; i < 24 && !c.ended; i++) {
        await c.write(byte).catch(() => {});
        await sleep(250); // kept: trickling a byte every 250 ms is the behaviour under test
      }
      return Date.now() - started;
    };
    const talk = async () => {
      for (let i = 0; i < 5; i++) {
        await active.write(`n${i} NOOP\r\n`);
        await active.waitFor(`n${i} OK Completed\r\n`);
        await sleep(900); // kept: an active session's pace, under test beside the trickling ones
      }
    };
    const [lineMs, literalMs] = await Promise.all([trickle(line, 'x'), trickle(literal, 'y'), talk()]);
    for (const c of [line, literal]) {
      await c.waitForEnd(500);
      t.regex(c.text(), /\* BYE Autologout; idle for too long\r\n$/);
    }
    // 2 s after the greeting or the literal's "+", plus a trickle step and some slack for a busy machine
    t.true(lineMs! < 4500 && literalMs! < 4500, `closed after ${lineMs} and ${literalMs} ms`);
    t.false(active.ended, 'a client that completes a command every 0.9 s stays');
    const lines = await waitForLogLines(p, /no command received from client 127\.0\.0\.1:\d+ for 2 seconds: closing$/, 2);
    t.is(lines.length, 2);
    // and once it stops talking, it goes too
    await active.waitForEnd(4000);
    active.destroy();
  });
});

test('before login: a client that pipelines commands and never reads the replies costs bounded memory', async (t) => {
  await withProxy('', async (p) => {
    const before = rssKb(p.pid);
    const sampler = rssSampler(p.pid);
    const c = await Bare.connect(p.port);
    c.stopReading();
    // A CAPABILITY reply is ~10x the command: before the fix the daemon
    // buffered every reply (40 MB of commands took it to 850 MB).
    const chunk = Buffer.from('a CAPABILITY\r\n'.repeat(4096));
    let accepted = 0;
    const deadline = Date.now() + 6000;
    while (accepted < 30e6 && Date.now() < deadline) {
      const flushed = await Promise.race([c.write(chunk).then(() => true), sleep(1000).then(() => false)]);
      if (!flushed) break; // the proxy stopped reading: back-pressure works
      accepted += chunk.length;
    }
    await sleep(500); // kept, an observation window: the RSS sampler sees what the last writes cost
    const peak = sampler.stop();
    t.log(`accepted ${(accepted / 1e6).toFixed(1)} MB of commands; RSS ${before} -> peak ${peak} KiB`);
    t.true(accepted < 20e6, `the proxy kept reading (${accepted} bytes) from a client that reads nothing`);
    t.true(peak - before < 64 * 1024, `RSS grew by ${peak - before} KiB`);
    c.destroy();
    t.true(await loginWorks(p, 'user1'));
  });
});

test('after login: a client that stops reading large FETCHes costs bounded memory; other sessions go on', async (t) => {
  await withProxy('', async (p) => {
    const c = await Bare.connect(p.port);
    await c.write('a1 LOGIN user2 pass2\r\na2 SELECT INBOX\r\n');
    await c.waitFor(/\r\na2 OK/);
    const before = rssKb(p.pid);
    const sampler = rssSampler(p.pid);
    c.stopReading();
    // 20 x 3 MiB the client never reads
    await c.write(Array.from({ length: 20 }, (_, i) => `f${i} FETCH 21 BODY.PEEK[]\r\n`).join(''));
    // kept, an observation window: the proxy has seconds to buffer the unread FETCH data
    // if it ignored back-pressure; its RSS is sampled meanwhile
    await sleep(2500);
    t.true(await loginWorks(p, 'user3'), 'another session works meanwhile');
    const peak = sampler.stop();
    t.log(`RSS ${before} -> peak ${peak} KiB with 60 MiB of unread FETCH data pending`);
    t.true(peak - before < 48 * 1024, `RSS grew by ${peak - before} KiB`);
    c.destroy();
    // the client left without LOGOUT: the connection is resynchronised (or
    // given up on), and the stats file counts it either way
    const s = await statsWhen(p.statFile, (x) => x.extension!.resyncsOk + x.extension!.resyncsFailed >= 1, 15_000);
    t.is(s.extension!.resyncsOk + s.extension!.resyncsFailed, 1);
  });
});

test('max_clients and max_clients_per_ip: BYE with the reason, a log line; refused sockets are closed and a reset does not crash the daemon', async (t) => {
  await withProxy('max_clients 5\nmax_clients_per_ip 2', async (p) => {
    const held = [
      await Bare.connect(p.port),
      await Bare.connect(p.port),
      await Bare.connect(p.port, { localAddress: '127.0.0.2' }),
      await Bare.connect(p.port, { localAddress: '127.0.0.2' }),
    ];
    const perIp = await Bare.connect(p.port, { greeting: false, localAddress: '127.0.0.2' });
    await perIp.waitForEnd();
    t.is(perIp.text(), '* BYE Too many connections from your address\r\n');
    held.push(await Bare.connect(p.port, { localAddress: '127.0.0.3' }));
    const total = await Bare.connect(p.port, { greeting: false, localAddress: '127.0.0.4' });
    await total.waitForEnd();
    t.is(total.text(), '* BYE Too many connections, try again later\r\n');
    await waitForLogLines(p, /notice: refused connection from 127\.0\.0\.2: max_clients_per_ip \(2\) reached$/);
    await waitForLogLines(p, /notice: refused connection from 127\.0\.0\.4: max_clients \(5\) reached$/);

    // Refused clients that reset at once: the BYE write used to meet ECONNRESET
    // with no error listener, and the daemon died.
    const baseFds = fdCount(p.pid);
    for (let i = 0; i < 30; i++) {
      const s = await Bare.connect(p.port, { greeting: false, localAddress: '127.0.0.4' });
      await s.write('a NOOP\r\n'.repeat(200)).catch(() => {});
      s.reset();
    }
    // Refused clients that never close their side: closed by the proxy all the same.
    const lingering: Bare[] = [];
    for (let i = 0; i < 10; i++) lingering.push(await Bare.connect(p.port, { greeting: false, allowHalfOpen: true, localAddress: '127.0.0.4' }));
    // a dead daemon has no fds (-1): this ends at once then, and isAlive below says why
    const fds = await eventually('the refused sockets to be closed', () => (fdCount(p.pid) <= baseFds ? fdCount(p.pid) : undefined), 8000, () => `fds ${fdCount(p.pid)} > ${baseFds}`);
    t.true(isAlive(p.pid), 'the daemon survived refused clients that reset');
    t.true(fds <= baseFds);
    for (const c of lingering) {
      // closed by the proxy (its fd is gone); the FIN reaches this process a moment later
      await c.waitForEnd();
      t.regex(c.text(), /^\* BYE Too many connections/);
      c.destroy();
    }
    for (const c of held) c.destroy();
    await eventually('a free place', async () => ((await loginWorks(p, 'user4').catch(() => false)) ? true : undefined), 3000);
  });
});

test('line and literal limits before login: BYE for a line too long, NO [TOOBIG] for a literal too large, BYE when it cannot be skipped', async (t) => {
  await withProxy('max_preauth_line_length 1024\nmax_preauth_literal_size 100', async (p) => {
    const long = await Bare.connect(p.port);
    await long.write(`a1 NOOP ${'x'.repeat(3000)}`);
    await long.waitForEnd();
    t.regex(long.text(), /\r\n\* BYE line longer than 1024 bytes\r\n$/);
    await waitForLogLines(p, /client 127\.0\.0\.1:\d+: line longer than 1024 bytes: closing$/);

    const lit = await RawClient.connect(p.port);
    t.deepEqual(await lit.command('a2 LOGIN {200}'), ['a2 NO [TOOBIG] Literal too large']);
    t.deepEqual(await lit.command('a3 NOOP'), ['a3 OK Completed'], 'the connection goes on after a refused literal');
    // a non-synchronising literal over the limit is on its way anyway: BYE
    await lit.sendRaw(`a4 LOGIN {200+}\r\n${'z'.repeat(200)} x\r\n`);
    const rest = await lit.expectClosed();
    t.deepEqual(rest, ['* BYE literal of 200 bytes exceeds the limit of 100']);
    await lit.close();

    // an AUTHENTICATE response line over the limit
    const auth = await Bare.connect(p.port);
    await auth.write('a5 AUTHENTICATE PLAIN\r\n');
    await auth.waitFor('+ \r\n');
    await auth.write('A'.repeat(2000));
    await auth.waitForEnd();
    t.regex(auth.text(), /\* BYE Line too long\r\n$/);
    await waitForLogLines(p, /client 127\.0\.0\.1:\d+: AUTHENTICATE response longer than 1024 bytes: closing$/);
    t.true(await loginWorks(p, 'user5'));
  });
});

test('max_pending_commands: BYE when a client piles up commands; the server connection is not cached', async (t) => {
  await withProxy('max_pending_commands 5', async (p) => {
    const c = await Bare.connect(p.port);
    await c.write('a1 LOGIN user6 pass6\r\n');
    await c.waitFor(/a1 OK \[CAPABILITY [^\]]*\] User logged in\r\n/);
    // one write: all are read before the server can answer the first
    await c.write(Array.from({ length: 20 }, (_, i) => `n${i} NOOP\r\n`).join(''));
    await c.waitForEnd();
    t.regex(c.text(), /\* BYE Too many commands in progress\r\n$/);
    await waitForLogLines(p, /Invalidating server sd \[\d+\]: more than 5 commands pending$/);
    const again = await RawClient.connect(p.port);
    t.deepEqual(await again.command('b1 LOGIN user6 pass6'), ['b1 OK User logged in'], 'a new server connection, not the abandoned one');
    await again.close();
  });
});

test('idle_timeout: a silent session gets BYE, its server connection is resynchronised and cached; a client that ignores the BYE is closed anyway', async (t) => {
  await withProxy('idle_timeout 2', async (p) => {
    const c = await Bare.connect(p.port, { allowHalfOpen: true });
    await c.write('a1 LOGIN user7 pass7\r\na2 SELECT INBOX\r\n');
    await c.waitFor(/\r\na2 OK/);
    const baseFds = fdCount(p.pid);
    // generous waits: this must hold on a busy CI machine too
    await c.waitFor('* BYE Autologout; idle for too long\r\n', 8000);
    await waitForLogLines(p, /client idle for 2 s: closing the session$/, 1, 10_000);
    await waitForLogLines(p, /LOGOUT: 'user7' from server sd \[\d+\]$/, 1, 10_000);
    await statsWhen(p.statFile, (x) => x.extension!.resyncsOk === 1, 10_000);
    // it never closes its side: the proxy closes the descriptor within 5 s
    await eventually('the client socket to be closed', () => (fdCount(p.pid) < baseFds ? true : undefined), 12_000, () => `fds ${fdCount(p.pid)}, ${baseFds} before`);
    c.destroy();
    const again = await RawClient.connect(p.port);
    t.deepEqual(await again.command('b1 LOGIN user7 pass7'), ['* OK [XPROXYREUSE] IMAP connection reused by imapproxy', 'b1 OK User logged in']);
    t.regex((await again.command('b2 FETCH 1 FLAGS')).join('\n'), /^b2 BAD No mailbox selected/);
    await again.close();
  });
});

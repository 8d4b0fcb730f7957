// Faults (issue 8, part 4): the server dies under load, a server that drops
// the connection in the middle of a login or a FETCH, a pool that is full
// under concurrent logins, stats and trace files that cannot be written, and
// clients that vanish at every step of the login and of the relay. The daemon
// must survive every one of them without a restart, and never hand out a
// server connection it cannot vouch for.
//
// Not repeated here: a server that accepts and never answers, and a full pool
// with LRU eviction (proxy-pool.test.ts); one session whose server is killed
// or kicks it (proxy-relay.test.ts).
//
// The scripted fake servers below are fault injection: Dovecot cannot be made
// to drop a connection after exactly the LOGIN line or in the middle of a
// literal. The rule that no mocked server stands in for Dovecot is about the
// normal path, which every other test here runs against a real Dovecot.
import test from 'ava';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readStatsFile } from '@imapproxy/shared';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { isAlive } from './helpers/process-tree.js';
import { withProxy, type Proxy } from './helpers/proxy.js';
import { eventually, loginEvents, waitForCached, waitForLogLines } from './helpers/proxy-log.js';
import { Bare, fdCount, standardLogin, startFakeServer, statsWhen, type FakeConn } from './helpers/reliability.js';
import { RawClient } from './helpers/transcript.js';
import { settled } from './helpers/wait.js';

let dovecot: Dovecot;

test.before(async () => {
  dovecot = await startDovecot({ users: 30 });
});

test.after.always(async () => {
  await dovecot?.stop();
});

const pass = (user: string) => user.replace('user', 'pass');
const UNAVAILABLE = /^a1 NO \[UNAVAILABLE\] LOGIN failed: IMAP server unavailable$/;


// --- the server dies under load -----------------------------------------------------

test('Dovecot killed and restarted under load: clients get BYE or NO, the proxy recovers by itself, no dead cached connection is handed out', async (t) => {
  const victim = await startDovecot({ users: 8 });
  try {
    await withProxy(victim.port, 'login_timeout 5\nconnect_retries 0', async (p) => {
      const pid = p.pid;
      let phase: 'before' | 'down' | 'after' = 'before';
      let restartedAt = 0;
      const tally = { cycles: 0, cyclesAfterRestart: 0, byes: 0, unavailable: 0, closed: 0, hung: 0, reusedDead: 0 };
      const failures: string[] = [];
      const stopAt = () => restartedAt > 0 && Date.now() > restartedAt + 3000;
      const worker = async (n: number) => {
        const user = `user${(n % 8) + 1}`;
        while (!stopAt()) {
          let c: RawClient | undefined;
          const startedIn = phase;
          try {
            c = await RawClient.connect(p.port, { timeoutMs: 8000 });
            const reply = await c.command(`a1 LOGIN ${user} ${pass(user)}`);
            const last = reply.at(-1)!;
            if (UNAVAILABLE.test(last)) {
              tally.unavailable++;
              await sleep(50); // pacing, not synchronisation: a refused worker backs off a little
              continue;
            }
            if (last !== 'a1 OK User logged in') throw new Error(`LOGIN: ${last}`);
            const sel = await c.command('a2 SELECT INBOX');
            if (!/^a2 OK/.test(sel.at(-1)!)) throw new Error(`SELECT: ${sel.at(-1)}`);
            await c.command('a3 FETCH 1:5 (UID FLAGS)');
            await c.command('a4 NOOP');
            await c.command('a5 LOGOUT');
            await c.expectClosed();
            tally.cycles++;
            if (startedIn === 'after') tally.cyclesAfterRestart++;
            await sleep(10); // a little air for the two cores
          } catch (err) {
            const msg = (err as Error).message;
            const text = c?.transcript.join('\n') ?? '';
            if (/timed out/.test(msg)) {
              tally.hung++;
              failures.push(`${user}: ${msg.split('\n')[0]}`);
            } else if (/\* BYE/.test(text)) tally.byes++;
            else tally.closed++;
            // a connection reused after the restart must be one made after it
            if (startedIn === 'after' && /XPROXYREUSE/.test(text)) {
              tally.reusedDead++;
              failures.push(`${user}: a reused connection failed after the restart: ${msg.split('\n')[0]}\n${text}`);
            }
            await sleep(50); // pacing after a failed cycle, as above
          } finally {
            await c?.close();
          }
        }
      };
      const workers = Array.from({ length: 8 }, (_, i) => worker(i));
      // the pool is in use: every worker went round a couple of times and some logins reused
      await eventually('the workers to warm the pool', () =>
        (tally.cycles >= 16 && loginEvents(p).some((e) => e.kind === 'existing') ? true : undefined), 15_000);
      const newBeforeKill = new Set(loginEvents(p).filter((e) => e.kind === 'new').map((e) => e.sd));
      phase = 'down';
      await victim.kill();
      const killedAt = Date.now();
      // A login in the instant between the server's death and the proxy
      // reading the FIN may still get a cached connection (its first command
      // then gets BYE, counted above); once the pool holds none, none may.
      await eventually('the pool to drop the dead connections (a stats file written after the kill)', () =>
        (statSync(p.statFile).mtimeMs > killedAt && readStatsFile(p.statFile).retainedServerConnections === 0 ? true : undefined), 15_000);
      const logAtKill = p.log().length;
      // the outage is seen: a round of logins is refused while the server is down
      const refused = tally.unavailable;
      await eventually('logins refused during the outage', () => (tally.unavailable >= refused + 8 ? true : undefined), 15_000);
      await victim.restart();
      phase = 'after';
      restartedAt = Date.now();
      await Promise.all(workers);
      t.log(JSON.stringify(tally));
      t.deepEqual(failures, []);
      t.is(p.pid, pid);
      t.true(isAlive(pid), 'the proxy is still running');
      t.true(tally.byes + tally.closed + tally.unavailable > 0, 'the outage was seen by clients');
      t.true(tally.unavailable > 0, 'logins during the outage got NO [UNAVAILABLE]');
      t.true(tally.cyclesAfterRestart >= 8, 'every worker works again after the restart');
      // Every connection handed out after the kill was made after it.
      const after = loginEvents({ log: () => p.log().slice(logAtKill) } as Proxy);
      const reusedOld = after.filter((e) => e.kind === 'existing' && newBeforeKill.has(e.sd));
      t.deepEqual(reusedOld, [], 'a connection to the dead server was handed out');
      t.true(after.some((e) => e.kind === 'existing'), 'the pool works again after the restart');
    });
  } finally {
    await victim.stop();
  }
});

// --- a server that drops the connection mid-login and mid-FETCH --------------------------

test('a server that drops the connection at each step of the login: NO [UNAVAILABLE], the next login works', async (t) => {
  type Step = 'greeting' | 'after-greeting' | 'at-login' | 'stall-at-login' | 'garbage-at-login' | 'flood-at-login';
  let step: Step = 'greeting';
  const fake = await startFakeServer(async (c: FakeConn) => {
    const mode = step;
    if (mode === 'greeting') return void c.socket.destroy();
    c.send('* OK [CAPABILITY IMAP4rev1 LITERAL+ ID UNSELECT] Fake ready.\r\n');
    if (mode === 'after-greeting') return void c.socket.end();
    for (;;) {
      const line = await c.readLine();
      const [tag, cmd] = line.split(' ');
      const name = cmd!.toUpperCase();
      if (name === 'LOGIN') {
        if (mode === 'at-login') return void c.socket.destroy();
        if (mode === 'stall-at-login') return; // never answers
        if (mode === 'garbage-at-login') return void c.send('\x00\x01 garbage {5\r\n');
        if (mode === 'flood-at-login') {
          // untagged lines for ever, each well within server_timeout
          const timer = setInterval(() => c.send('* OK still thinking\r\n'), 20);
          c.socket.on('close', () => clearInterval(timer));
          return;
        }
        // no capabilities in the reply: the proxy asks CAPABILITY next (issue 18)
        c.send(`${tag} OK Logged in\r\n`);
        continue;
      }
      if (name === 'LOGOUT') return void c.socket.end(`* BYE\r\n${tag} OK\r\n`);
      c.send(`* CAPABILITY IMAP4rev1 LITERAL+ ID UNSELECT\r\n${tag} OK done\r\n`);
    }
  });
  try {
    await withProxy(fake.port, 'login_timeout 2\nserver_timeout 2', async (p) => {
      // the start-up greeting fetch met the 'greeting' step (dropped) before the first client
      await waitForLogLines(p, /Unable to read the IMAP server's greeting and capabilities/);
      for (const s of ['greeting', 'after-greeting', 'at-login', 'stall-at-login', 'garbage-at-login', 'flood-at-login'] as Step[]) {
        step = s;
        const c = await RawClient.connect(p.port, { timeoutMs: 6000 });
        const started = Date.now();
        t.regex((await c.command('a1 LOGIN user1 pass1')).at(-1)!, UNAVAILABLE, s);
        t.true(Date.now() - started < 4000, `${s}: answered within login_timeout`);
        await c.close();
      }
      await waitForLogLines(p, /LOGIN: 'user1' \(127\.0\.0\.1:\d+\) failed: /, 6);
      await waitForLogLines(p, /failed: the server login took longer than login_timeout$/);
      const s = await statsWhen(p.statFile, (x) => x.extension!.loginFailures === 6);
      t.is(s.extension!.serverConnectFailures, 6);
      t.is(s.inUseServerConnections + s.retainedServerConnections, 0);
      step = 'ok' as Step;
      const c = await RawClient.connect(p.port);
      t.deepEqual(await c.command('a1 LOGIN user1 pass1'), ['a1 OK User logged in']);
      await c.close();
      t.true(isAlive(p.pid));
    });
  } finally {
    await fake.close();
  }
});

test('a server that drops the connection in the middle of a FETCH: the client gets what came and EOF (a BYE only between responses); nothing is cached', async (t) => {
  let mode: 'mid-literal' | 'between' = 'mid-literal';
  const fake = await startFakeServer(async (c: FakeConn) => {
    if (!(await standardLogin(c))) return;
    for (;;) {
      const line = await c.readLine();
      const [tag, cmd] = line.split(' ');
      const name = cmd!.toUpperCase();
      if (name === 'SELECT') c.send(`* 2 EXISTS\r\n${tag} OK [READ-WRITE] done\r\n`);
      else if (name === 'FETCH' && mode === 'mid-literal') return void c.socket.end(`* 1 FETCH (BODY[] {1000}\r\n${'x'.repeat(300)}`);
      else if (name === 'FETCH') return void c.socket.end(`* 1 FETCH (FLAGS (\\Seen))\r\n`);
      else c.send(`${tag} OK done\r\n`);
    }
  });
  try {
    await withProxy(fake.port, '', async (p) => {
      for (const m of ['mid-literal', 'between'] as const) {
        mode = m;
        const c = await Bare.connect(p.port);
        await c.write('a1 LOGIN user1 pass1\r\na2 SELECT INBOX\r\n');
        await c.waitFor(/a2 OK/);
        await c.write('a3 FETCH 1 BODY[]\r\n');
        await c.waitForEnd();
        if (m === 'mid-literal') t.true(c.text().endsWith(`{1000}\r\n${'x'.repeat(300)}`), `${m}: ${JSON.stringify(c.text().slice(-80))}`);
        else t.true(c.text().endsWith('* 1 FETCH (FLAGS (\\Seen))\r\n* BYE IMAP server closed the connection\r\n'), `${m}: ${JSON.stringify(c.text().slice(-80))}`);
        c.destroy();
      }
      await waitForLogLines(p, /IMAP server unexpectedly closed the connection/, 2);
      const s = await statsWhen(p.statFile, (x) => x.inUseServerConnections === 0);
      t.is(s.retainedServerConnections, 0, 'a connection that died is never cached');
      const logins = fake.connections.length;
      const again = await RawClient.connect(p.port);
      t.deepEqual(await again.command('b1 LOGIN user1 pass1'), ['b1 OK User logged in']);
      await again.close();
      t.is(fake.connections.length, logins + 1, 'a new server connection');
      t.true(isAlive(p.pid));
    });
  } finally {
    await fake.close();
  }
});

test('a server that sends a literal too large to be a length: that session gets BYE, the daemon and other sessions go on', async (t) => {
  const fake = await startFakeServer(async (c: FakeConn) => {
    if (!(await standardLogin(c))) return;
    for (;;) {
      const line = await c.readLine();
      const [tag, cmd] = line.split(' ');
      const name = cmd!.toUpperCase();
      if (name === 'FETCH') c.send(`* 1 FETCH (BODY[] {1234567890123456}\r\n`);
      else c.send(`${tag} OK done\r\n`);
    }
  });
  try {
    await withProxy(fake.port, '', async (p) => {
      const other = await RawClient.connect(p.port);
      t.deepEqual(await other.command('o1 LOGIN user2 pass2'), ['o1 OK User logged in']);
      const c = await Bare.connect(p.port);
      await c.write('a1 LOGIN user1 pass1\r\n');
      await c.waitFor(/a1 OK/);
      await c.write('a2 FETCH 1 BODY[]\r\n');
      await c.waitForEnd();
      t.true(c.text().endsWith('* BYE Internal error: unreadable response from the IMAP server\r\n'), JSON.stringify(c.text().slice(-80)));
      c.destroy();
      await waitForLogLines(p, /server protocol error: literal of 1234567890123456 bytes is too large/);
      t.true(isAlive(p.pid), 'the daemon is still running');
      t.deepEqual(await other.command('o2 NOOP'), ['o2 OK done'], 'another session goes on');
      await other.close();
    });
  } finally {
    await fake.close();
  }
});

test('resync_timeout: a client left with a command outstanding and the server never answers: the connection is closed, not cached', async (t) => {
  const fake = await startFakeServer(async (c: FakeConn) => {
    if (!(await standardLogin(c))) return;
    for (;;) {
      const line = await c.readLine(30_000);
      const [tag, cmd] = line.split(' ');
      if (cmd!.toUpperCase() === 'SEARCH') continue; // never answered, nor anything after it
      if (cmd!.toUpperCase() === 'LOGOUT') return void c.socket.end(`* BYE\r\n${tag} OK\r\n`);
      if (/^X/.test(tag!)) continue; // the proxy's own clean-up gets no answer either
      c.send(`${tag} OK done\r\n`);
    }
  });
  try {
    await withProxy(fake.port, 'resync_timeout 2', async (p) => {
      const c = await Bare.connect(p.port);
      await c.write('a1 LOGIN user1 pass1\r\na2 SEARCH ALL\r\n');
      await c.waitFor('a1 OK');
      await eventually('the SEARCH at the server', () => (fake.connections.some((f) => f.received.includes('a2 SEARCH ALL')) ? true : undefined));
      c.destroy();
      const started = Date.now();
      await waitForLogLines(p, /Invalidating server sd \[\d+\]: (commands still pending after 2 s|no answer to NOOP within 2 s)$/, 1, 5000);
      t.true(Date.now() - started >= 1800);
      const s = await statsWhen(p.statFile, (x) => x.extension!.resyncsFailed === 1);
      t.is(s.retainedServerConnections, 0);
      await eventually('the fake server to see the connection close', () => (fake.connections[1]?.socket.destroyed || fake.connections[1]?.socket.readableEnded ? true : undefined), 5000);
      t.true(isAlive(p.pid));
    });
  } finally {
    await fake.close();
  }
});

// --- the pool full under concurrent logins ---------------------------------------

test('a full pool under concurrent logins: every login gets OK or NO [UNAVAILABLE] at once, never more than cache_size server sessions', async (t) => {
  await withProxy(dovecot.port, 'cache_size 3', async (p) => {
    const users = ['user20', 'user21', 'user22', 'user23', 'user24', 'user25'];
    const tally = { ok: 0, full: 0, other: [] as string[] };
    let maxSessions = 0;
    const deadline = Date.now() + 3000;
    const sampler = (async () => {
      while (Date.now() < deadline) {
        const who = await dovecot.doveadm('who');
        let n = 0;
        for (const line of who.split('\n').slice(1)) {
          const m = /^(user2[0-5])\s+(\d+)\s+imap\b/.exec(line);
          if (m) n += Number(m[2]);
        }
        maxSessions = Math.max(maxSessions, n);
        await sleep(100); // the sampling period of a sampler, not a synchronisation
      }
    })();
    const worker = async (n: number) => {
      const user = users[n % users.length]!;
      while (Date.now() < deadline) {
        const c = await RawClient.connect(p.port, { timeoutMs: 3000 });
        try {
          const r = (await c.command(`a1 LOGIN ${user} ${pass(user)}`)).at(-1)!;
          if (r === 'a1 OK User logged in') {
            tally.ok++;
            await c.command('a2 NOOP');
            await c.command('a3 LOGOUT');
          } else if (r === 'a1 NO [UNAVAILABLE] LOGIN failed: too many connections') {
            tally.full++;
          } else tally.other.push(r);
        } finally {
          await c.close();
        }
      }
    };
    await Promise.all([sampler, ...Array.from({ length: 10 }, (_, i) => worker(i))]);
    t.log(JSON.stringify({ ...tally, maxSessions }));
    t.deepEqual(tally.other, []);
    t.true(tally.ok > 0 && tally.full > 0);
    // an evicted session's process may take a moment to go
    t.true(maxSessions <= 4, `Dovecot saw ${maxSessions} sessions of these users`);
    const s = await statsWhen(p.statFile, (x) => x.inUseServerConnections === 0);
    t.true(s.peakInUseServerConnections <= 3);
    t.true(s.retainedServerConnections <= 3);
  });
});

// --- stats and trace files that cannot be written ------------------------------------

test('stats and trace files that cannot be created at start, or whose directory is removed later: the daemon runs on and logs it', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imapproxy-faults-'));
  await chmod(dir, 0o755);
  try {
    // a regular file where a directory should be: not even root can create these
    await writeFile(path.join(dir, 'not-a-dir'), '');
    const badStats = path.join(dir, 'not-a-dir', 'pimpstats');
    const badTrace = path.join(dir, 'not-a-dir', 'protocol.log');
    await withProxy(dovecot.port, `stat_filename ${badStats}\nprotocol_log_filename ${badTrace}\nenable_admin_commands yes`, async (p) => {
      await p.waitForLog(/err: stats file .*not-a-dir\/pimpstats: .*running without a stats file/);
      await p.waitForLog(/err: cannot open protocol log file .*not-a-dir\/protocol\.log: .*protocol tracing is unavailable/);
      const c = await RawClient.connect(p.port);
      t.deepEqual(await c.command('a1 LOGIN user26 pass26'), ['a1 OK User logged in']);
      await c.command('a2 LOGOUT');
      await c.close();
      t.true(isAlive(p.pid));
    });

    // both in a directory that is removed while the daemon runs
    const live = path.join(dir, 'live');
    await mkdir(live, { mode: 0o755 });
    const stats = path.join(live, 'pimpstats');
    await withProxy(dovecot.port, `stat_filename ${stats}\nprotocol_log_filename ${path.join(live, 'protocol.log')}\nenable_admin_commands yes`, async (p) => {
      const a = await RawClient.connect(p.port);
      t.deepEqual(await a.command('a1 XPROXY_TRACE user27'), ['a1 OK Tracing enabled for user user27.']);
      await a.close();
      await rm(live, { recursive: true, force: true });
      for (let i = 0; i < 3; i++) {
        const c = await RawClient.connect(p.port);
        t.is((await c.command('a1 LOGIN user27 pass27')).at(-1), 'a1 OK User logged in');
        t.regex((await c.command('a2 SELECT INBOX')).at(-1)!, /^a2 OK/, 'a traced session whose trace file is gone');
        await c.command('a3 LOGOUT');
        await c.close();
        await waitForCached(p, 'user27', i + 1);
      }
      const n = await RawClient.connect(p.port);
      t.deepEqual(await n.command('a1 XPROXY_NEWLOG'), ['a1 OK Logfile cleared']);
      await n.close();
      // kept, an observation window: a few ticks of the once-a-second timers (stats,
      // trace) run with the trace file gone; an idle daemon writes nothing to wait for
      await sleep(2500);
      t.true(isAlive(p.pid));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// --- clients dropped at every step of the login and of the relay ----------------------

interface DropStep {
  name: string;
  /** Runs on a fresh connection (greeting read unless noGreeting) and leaves it at the point of the drop. */
  run(c: Bare): Promise<void>;
  noGreeting?: boolean;
}

const USER = 'user28';
const login = `a1 LOGIN ${USER} ${pass(USER)}\r\n`;
const loggedIn = async (c: Bare) => {
  await c.write(login);
  await c.waitFor(/a1 OK (\[CAPABILITY [^\]]*\] )?User logged in\r\n/);
};

const DROP_STEPS: DropStep[] = [
  { name: 'before the greeting', noGreeting: true, run: async () => {} },
  { name: 'after the greeting', run: async () => {} },
  { name: 'in the middle of a line', run: (c) => c.write('a1 LOG') },
  { name: 'after a literal announcement', run: async (c) => {
    await c.write('a1 LOGIN {6}\r\n');
    await c.waitFor('+ go ahead');
  } },
  { name: 'in the middle of a literal', run: async (c) => {
    await c.write('a1 LOGIN {6}\r\n');
    await c.waitFor('+ go ahead');
    await c.write('use');
  } },
  { name: 'in AUTHENTICATE PLAIN', run: async (c) => {
    await c.write('a1 AUTHENTICATE PLAIN\r\n');
    await c.waitFor('+ ');
  } },
  { name: 'while the server login runs', run: (c) => c.write(login) },
  { name: 'while a failed login runs', run: (c) => c.write(`a1 LOGIN ${USER} wrong\r\n`) },
  { name: 'right after the LOGIN OK', run: loggedIn },
  { name: 'after SELECT, before its reply', run: async (c) => {
    await loggedIn(c);
    await c.write('a2 SELECT INBOX\r\n');
  } },
  { name: 'in the middle of a command line', run: async (c) => {
    await loggedIn(c);
    await c.write('a2 SELECT INBOX\r\na3 FETCH 1:* (FL');
  } },
  { name: 'after an APPEND literal announcement', run: async (c) => {
    await loggedIn(c);
    await c.write('a2 APPEND INBOX {40}\r\n');
    await c.waitFor(/\r\n\+ /);
  } },
  { name: 'in the middle of an APPEND literal', run: async (c) => {
    await loggedIn(c);
    await c.write('a2 APPEND INBOX {40}\r\n');
    await c.waitFor(/\r\n\+ /);
    await c.write('Subject: x\r\n\r\nhal');
  } },
  { name: 'in the middle of a large FETCH', run: async (c) => {
    await loggedIn(c);
    await c.write('a2 SELECT INBOX\r\na3 FETCH 21 BODY.PEEK[]\r\n');
    await c.waitFor('* 21 FETCH');
  } },
  { name: 'in IDLE', run: async (c) => {
    await loggedIn(c);
    await c.write('a2 SELECT INBOX\r\na3 IDLE\r\n');
    await c.waitFor('+ idling');
  } },
  { name: 'after DONE, before the IDLE reply', run: async (c) => {
    await loggedIn(c);
    await c.write('a2 SELECT INBOX\r\na3 IDLE\r\n');
    await c.waitFor('+ idling');
    await c.write('DONE\r\n');
  } },
  { name: 'with commands pipelined', run: async (c) => {
    await loggedIn(c);
    await c.write('a2 SELECT INBOX\r\na3 SEARCH ALL\r\na4 FETCH 1:* (FLAGS UID)\r\na5 NOOP\r\n');
  } },
  { name: 'after LOGOUT, before its reply', run: async (c) => {
    await loggedIn(c);
    await c.write('a2 SELECT INBOX\r\na3 LOGOUT\r\n');
  } },
];

test('clients dropped at every step of the login and of the relay (FIN and RST): the next session is clean, the gauges come back to zero', async (t) => {
  await withProxy(dovecot.port, '', async (p) => {
    // the start-up greeting fetch has come and gone: its socket is not in the baseline
    const baseFds = await settled('the daemon\'s open files to settle', () => fdCount(p.pid), { quietMs: 300 });
    let drops = 0;
    for (const step of DROP_STEPS) {
      for (const rst of [false, true]) {
        const c = await Bare.connect(p.port, { greeting: !step.noGreeting });
        await step.run(c);
        if (rst) c.reset();
        else c.destroy();
        drops++;
        // the next session of the user sees only its own replies and starts unselected
        const b = await RawClient.connect(p.port);
        const r = await b.command(`b1 LOGIN ${USER} ${pass(USER)}`);
        t.is(r.at(-1), 'b1 OK User logged in', `${step.name}: ${b.describe()}`);
        t.deepEqual((await b.command('b2 NOOP')).map((l) => l.replace(/ \(.*\)\.$/, '.')), ['b2 OK NOOP completed.'], `${step.name} (${rst ? 'RST' : 'FIN'})`);
        t.regex((await b.command('b3 FETCH 1 FLAGS')).join('\n'), /^b3 BAD No mailbox selected/, step.name);
        await b.command('b4 LOGOUT');
        await b.close();
      }
    }
    t.true(isAlive(p.pid));
    const s = await statsWhen(p.statFile, (x) => x.currentClientConnections === 0 && x.inUseServerConnections === 0, 15_000);
    t.true(s.retainedServerConnections <= 3, `retained ${s.retainedServerConnections}`);
    t.is(s.extension!.gaugeUnderflows, 0);
    // no descriptor left behind: the cached connections at most
    await eventually('descriptors back to the baseline', () => (fdCount(p.pid) <= baseFds + s.retainedServerConnections ? true : undefined), 8000, () => `${fdCount(p.pid)} fds, ${baseFds} at start`);
    t.log(`${drops} drops survived`);
  });
});

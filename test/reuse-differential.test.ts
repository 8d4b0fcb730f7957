// The differential reuse test (issue 16): a random first session through the
// proxy (every command of the command-traits table and unknown ones, literals,
// smuggling, pipelining, drops at any point), then a fixed probe session of
// the same user through the proxy, on the first session's server connection
// whenever the proxy cached it, compared with the same probe on a fresh direct
// Dovecot login right after. No difference is allowed: a reused connection
// behaves exactly like a fresh login. With and without the select cache.
//
// REUSE_DIFF_SCRIPTS (per proxy, default 32) and REUSE_DIFF_SEED (default 1)
// make the long run of bench/reuse-differential.sh.
import test, { type ExecutionContext } from 'ava';
import { lastSd, verdict } from './helpers/connection-verdict.js';
import { startDovecot, type Dovecot } from './helpers/dovecot.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { normaliseProbeLine, PROBE, sessionScript, type SessionScript, type Step } from './helpers/session-scripts.js';
import { RawClient } from './helpers/transcript.js';

const SCRIPTS = Number(process.env.REUSE_DIFF_SCRIPTS ?? 32);
const SEED = Number(process.env.REUSE_DIFF_SEED ?? 1);
/** Users per proxy, each running its share of the scripts one after the other. */
const LANES = 4;
/** How long the first session waits for a reply that may never come (a smuggled command, a lost framing). */
const REPLY_WAIT_MS = 2000;

let dovecot: Dovecot;
const proxies: Record<'plain' | 'selectCache', Proxy | undefined> = { plain: undefined, selectCache: undefined };

test.before(async () => {
  dovecot = await startDovecot({ users: 2 * LANES });
  [proxies.plain, proxies.selectCache] = await Promise.all([
    startProxy({ serverPort: dovecot.port, extraConf: 'resync_timeout 3' }),
    startProxy({ serverPort: dovecot.port, extraConf: 'enable_select_cache yes\nresync_timeout 3' }),
  ]);
  // The probe's keyword exists before the first probe, so every SELECT lists it.
  await Promise.all(Array.from({ length: 2 * LANES }, async (_, i) => {
    const c = await RawClient.connect(dovecot.port);
    await c.command(`w1 LOGIN user${i + 1} pass${i + 1}`);
    await c.command('w2 SELECT INBOX');
    await c.command('w3 STORE 1 +FLAGS ($Probe)');
    await c.command('w4 STORE 1 -FLAGS ($Probe)');
    await c.command('w5 LOGOUT');
    await c.close();
  }));
});

test.after.always(async () => {
  await proxies.plain?.stop();
  await proxies.selectCache?.stop();
  await dovecot?.stop();
});

/** Reads until every tag in `tags` has its tagged reply, the connection closes, or nothing more comes. */
async function readTags(c: RawClient, tags: string[], continuation = false): Promise<void> {
  const left = new Set(tags);
  while ((left.size > 0 || continuation) && !c.isClosed) {
    let line: string;
    try {
      line = await c.readLine(REPLY_WAIT_MS);
    } catch {
      return;
    }
    if (continuation && line.startsWith('+')) return;
    const sp = line.indexOf(' ');
    if (sp > 0) left.delete(line.slice(0, sp));
  }
}

/**
 * Runs the first session; the server sd it got, or null when it never said
 * enough to get one (with a connection with extensions on in the pool, the
 * proxy decides at the first command line, enabled-reuse.ts).
 */
async function firstSession(proxy: Proxy, user: string, script: SessionScript): Promise<number | null> {
  const from = proxy.log().length;
  const c = await RawClient.connect(proxy.port, { timeoutMs: 10_000 });
  const login = await c.command(`s LOGIN ${user} ${user.replace('user', 'pass')}`);
  if (!login.at(-1)?.startsWith('s OK')) throw new Error(`login failed: ${login.join(' | ')}`);
  const steps: Step[] = script.steps;
  for (const [i, step] of steps.entries()) {
    if (c.isClosed) break;
    await c.sendRaw(step.bytes).catch(() => undefined);
    if (script.ending === 'drop-unread' && i === steps.length - 1) break;
    await readTags(c, step.tags, step.continuation === true);
  }
  if (!c.isClosed) {
    if (script.ending === 'logout') {
      await c.sendRaw('sl LOGOUT\r\n').catch(() => undefined);
      await c.expectClosed(REPLY_WAIT_MS * 2).catch(() => undefined);
    } else if (script.ending === 'drop-mid-line') {
      await c.sendRaw('sm FETCH 1 (FL').catch(() => undefined);
    }
  }
  await c.close();
  const sdOf = (): number | undefined => {
    for (const line of proxy.log().slice(from)) {
      const m = new RegExp(`LOGIN: '${user}' \\(.*\\) on (?:new|existing) sd \\[(\\d+)\\]`).exec(line);
      if (m) return Number(m[1]);
    }
    return undefined;
  };
  // the line is logged once the proxy knows; the client's close tells it at the latest
  const deadline = Date.now() + 5000;
  while (sdOf() === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return sdOf() ?? null;
}

/**
 * The probe's first command, by seed: nothing more, or one that switches
 * extensions on (a connection cached with them on may serve it).
 */
const PROBE_FIRST = ['', 'p00 STATUS INBOX (MESSAGES HIGHESTMODSEQ)', 'p00 ENABLE CONDSTORE', 'p00 ENABLE QRESYNC'];

async function probe(port: number, user: string, first: string): Promise<{ lines: string[]; reused: boolean }> {
  const c = await RawClient.connect(port, { timeoutMs: 10_000 });
  const login = await c.command(`p LOGIN ${user} ${user.replace('user', 'pass')}`);
  if (!login.at(-1)?.startsWith('p OK')) throw new Error(`probe login failed: ${login.join(' | ')}`);
  const lines: string[] = [];
  for (const command of first === '' ? PROBE : [first, ...PROBE]) lines.push(...(await c.command(command)).map(normaliseProbeLine));
  await c.send('p99 LOGOUT');
  await c.expectClosed();
  return { lines, reused: login.some((l) => l.includes('[XPROXYREUSE]')) };
}

interface Tally {
  scripts: number;
  reused: number;
  differences: string[];
  /** Probes on the very connection the first session left. */
  onFirst: number;
  /** Why first sessions' connections were closed, with counts. */
  closed: Map<string, number>;
}

async function lane(proxy: Proxy, user: string, seeds: number[], tally: Tally): Promise<void> {
  for (const seed of seeds) {
    const script = sessionScript(seed);
    const from = proxy.log().length;
    const sd = await firstSession(proxy, user, script);
    const { outcome, line } = sd === null ? { outcome: 'none' as const, line: '' } : await verdict(proxy, user, sd, from);
    if (outcome === 'closed') {
      const why = line.replace(/^.*sd \[\d+\]:? ?/, '').replace(/\d+/g, 'N');
      tally.closed.set(why, (tally.closed.get(why) ?? 0) + 1);
    }
    const probeFrom = proxy.log().length;
    const first = PROBE_FIRST[seed % PROBE_FIRST.length]!;
    const through = await probe(proxy.port, user, first);
    const direct = await probe(dovecot.port, user, first);
    tally.scripts++;
    // (a connection with extensions on is reused without XPROXYREUSE: the proxy's log says it)
    if (proxy.log().slice(probeFrom).some((l) => l.includes(`LOGIN: '${user}'`) && l.includes('on existing sd'))) tally.reused++;
    // The probe gets the first session's connection unless another one of the
    // user fits it better (one with extensions on only serves a probe that
    // switches the same ones on first, enabled-reuse.ts).
    if (outcome === 'cached' && lastSd(proxy, user) === sd) tally.onFirst++;
    const same = through.lines.length === direct.lines.length && through.lines.every((l, i) => l === direct.lines[i]);
    if (!same) {
      const at = through.lines.findIndex((l, i) => l !== direct.lines[i]);
      tally.differences.push(
        `seed ${seed} (${outcome}, ${script.ending}): ${JSON.stringify(script.steps.map((s) => s.bytes.slice(0, 120)))}\n` +
          `  through the proxy: ${JSON.stringify(through.lines.slice(Math.max(0, at - 1), at + 3))}\n` +
          `  direct:            ${JSON.stringify(direct.lines.slice(Math.max(0, at - 1), at + 3))}`,
      );
    }
  }
}

async function differential(t: ExecutionContext, mode: 'plain' | 'selectCache', firstUser: number, seedBase: number): Promise<void> {
  const proxy = proxies[mode]!;
  const tally: Tally = { scripts: 0, reused: 0, onFirst: 0, differences: [], closed: new Map() };
  await Promise.all(Array.from({ length: LANES }, (_, l) => {
    const seeds = Array.from({ length: Math.ceil(SCRIPTS / LANES) }, (_, i) => seedBase + i * LANES + l);
    return lane(proxy, `user${firstUser + l}`, seeds, tally);
  }));
  t.log(`${mode}: ${tally.scripts} scripts, ${tally.reused} probes on a reused connection (${tally.onFirst} on the first session's), ${tally.differences.length} differences`);
  t.log(`first sessions' connections closed: ${JSON.stringify([...tally.closed].sort((a, b) => b[1] - a[1]))}`);
  t.deepEqual(tally.differences, []);
  // the test must exercise reuse, not only closed connections
  // (connections with extensions on stay in the pool for sessions that ask for them, so a
  // probe often gets another reused connection than the first session's; each has a history)
  t.true(tally.reused > tally.scripts / 2, `only ${tally.reused} of ${tally.scripts} probes were reused`);
}

test('every probe after a random first session sees what a fresh direct login sees (no select cache)', async (t) => {
  await differential(t, 'plain', 1, SEED * 100_000);
});

test('every probe after a random first session sees what a fresh direct login sees (select cache on)', async (t) => {
  await differential(t, 'selectCache', LANES + 1, SEED * 100_000 + 50_000);
});

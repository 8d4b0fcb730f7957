// Roundcube bench (issue 17; run by bench/roundcube.sh): N users click through
// Roundcube 1.6 at the same time, each in a closed loop of page views (mail page +
// message list + preview: what a browser loads when a user opens the inbox and
// reads a message), against Dovecot directly, through ours and through the C
// original, with Roundcube's own cache off and on. Printed per run: page views/s,
// median and p95 page time, Dovecot logins, reuse %, select cache hits, and
// whether the scripted walk (test/helpers/roundcube-walk.ts: mark, move to Trash
// and back while another client holds a \Deleted message) leaves the mailbox as it
// does straight to Dovecot.
//
// Both proxies run with enable_select_cache yes. Everything listens on 127.0.0.1
// only and is stopped when the bench ends.
import { readFileSync } from 'node:fs';
import { readStatsFile } from '@imapproxy/shared';
import { startCImapproxy } from '../helpers/c-imapproxy.js';
import { startDovecot, type Dovecot } from '../helpers/dovecot.js';
import { startProxy } from '../helpers/proxy.js';
import { roundcubeMissing, startRoundcube } from '../helpers/roundcube.js';
import { RoundcubeClient } from '../helpers/roundcube-client.js';
import {
  flagDeletedElsewhere, mailboxState, pageView, roundcubeWalk, type MessageState,
} from '../helpers/roundcube-walk.js';

interface Options { clients: number; seconds: number; warmup: number; rounds: number; targets: Target[]; caches: boolean[]; selectCache: boolean }
type Target = 'direct' | 'ours' | 'c';
const TARGET_NAME: Record<Target, string> = { direct: 'direct Dovecot', ours: 'ours (imapproxy-ts)', c: 'C original 1.2.8' };

function parseArgs(argv: string[]): Options {
  const o: Options = { clients: 4, seconds: 15, warmup: 3, rounds: 1, targets: ['direct', 'ours', 'c'], caches: [false, true], selectCache: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const num = (): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} needs a positive integer, not ${v}`);
      i++;
      return n;
    };
    if (a === '--clients') o.clients = num();
    else if (a === '--seconds') o.seconds = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--rounds') o.rounds = num();
    else if (a === '--targets') {
      o.targets = (v ?? '').split(',') as Target[];
      if (o.targets.some((t) => !(t in TARGET_NAME))) throw new Error(`--targets: a comma list of direct,ours,c, not ${v}`);
      i++;
    } else if (a === '--cache') {
      if (v !== 'off' && v !== 'on' && v !== 'both') throw new Error(`--cache: off, on or both, not ${v}`);
      o.caches = v === 'both' ? [false, true] : [v === 'on'];
      i++;
    } else if (a === '--select-cache') {
      if (v !== 'off' && v !== 'on') throw new Error(`--select-cache: off or on, not ${v}`);
      o.selectCache = v === 'on';
      i++;
    } else if (a === '--help' || a === '-h') {
      console.log('bench/roundcube.sh [--clients N] [--seconds S] [--warmup S] [--rounds N] [--targets direct,ours,c] [--cache off|on|both] [--select-cache on|off]');
      process.exit(0);
    } else throw new Error(`unknown option ${a} (--help)`);
  }
  return o;
}

interface Row {
  cache: boolean;
  target: Target;
  views: number;
  viewsPerSec: number;
  medianMs: number;
  p95Ms: number;
  errors: number;
  /** CPU time of the proxy process in the window, per page view (ms); null for direct. */
  proxyCpuMsPerView: number | null;
  dovecotLogins: number;
  roundcubeLogins: number;
  reusePct: number | null;
  selects: number | null;
  selectHits: number | null;
  state: Record<string, MessageState[]>;
  stateEqual?: boolean | null;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** utime + stime of a process in ms, from /proc (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

interface Counters { logins: number; reused: number; selects: number; hits: number }
function proxyCounters(statFile: string): Counters {
  const s = readStatsFile(statFile);
  return { logins: s.totalClientLogins, reused: s.totalServerConnectionsReused, selects: s.totalSelectCommands, hits: s.selectCacheHits };
}

async function oneRun(dovecot: Dovecot, o: Options, target: Target, cache: boolean, walkUser: string): Promise<Row> {
  const extraConf = `enable_select_cache ${o.selectCache ? 'yes' : 'no'}`;
  const proxy = target === 'ours'
    ? await startProxy({ serverPort: dovecot.port, extraConf })
    : target === 'c' ? await startCImapproxy({ serverPort: dovecot.port, extraConf }) : undefined;
  const imapPort = proxy?.port ?? dovecot.port;
  const rc = await startRoundcube({ imapPort, cache, workers: Math.max(2, o.clients) });
  const pass = (u: string): string => dovecot.users.find((x) => x.user === u)!.pass;
  try {
    // log every user in and mark all their mail read (not measured): the page views
    // then browse without changing the mailbox, the steady state of a webmail
    // user, where every SELECT may be answered from a select cache
    const clients = await Promise.all(Array.from({ length: o.clients }, async (_, k) => {
      const c = new RoundcubeClient(rc.url);
      await c.login(`user${k + 1}`, `pass${k + 1}`);
      await c.mark(Array.from({ length: 21 }, (_, i) => i + 1), 'read');
      return c;
    }));
    const start = performance.now();
    const windowStart = start + o.warmup * 1000;
    const end = windowStart + o.seconds * 1000;
    const times: number[] = [];
    let errors = 0;
    let before: { dovecot: number; rc: number; counters?: Counters; cpu?: number } | undefined;
    const startWindow = async (): Promise<void> => {
      before = {
        cpu: proxy ? cpuMs(proxy.pid) : undefined,
        dovecot: await dovecot.loginCountNow(),
        rc: (await rc.imapLog()).filter((l) => /\] C: \S+ (LOGIN|AUTHENTICATE) /.test(l)).length,
        counters: proxy ? proxyCounters(proxy.statFile) : undefined,
      };
    };
    const windowTimer = new Promise<void>((resolve) => setTimeout(() => { void startWindow().then(resolve); }, o.warmup * 1000));
    await Promise.all(clients.map(async (c, k) => {
      let i = k;
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await pageView(c, 1 + (i++ % 20));
        } catch (err) {
          errors++;
          if (errors <= 3) console.error(`  ${target} cache ${cache ? 'on' : 'off'}: ${(err as Error).message.slice(0, 300)}`);
          await c.login(`user${k + 1}`, `pass${k + 1}`).catch(() => undefined);
          continue;
        }
        const t1 = performance.now();
        if (t0 >= windowStart && t1 <= end) times.push(t1 - t0);
      }
    }));
    await windowTimer;
    // page views end a little after the window: their logins are within a page view of the end
    const after = {
      cpu: proxy ? cpuMs(proxy.pid) : undefined,
      dovecot: await dovecot.loginCountNow(),
      rc: (await rc.imapLog()).filter((l) => /\] C: \S+ (LOGIN|AUTHENTICATE) /.test(l)).length,
      counters: proxy ? proxyCounters(proxy.statFile) : undefined,
    };
    await Promise.all(clients.map((c) => c.logout().catch(() => undefined)));
    const d = after.counters && before!.counters
      ? { logins: after.counters.logins - before!.counters.logins, reused: after.counters.reused - before!.counters.reused,
        selects: after.counters.selects - before!.counters.selects, hits: after.counters.hits - before!.counters.hits }
      : undefined;

    // the walk on a user of its own, after another client flagged a message \Deleted
    await flagDeletedElsewhere(dovecot.port, walkUser, pass(walkUser));
    await roundcubeWalk(rc.url, walkUser, pass(walkUser));
    const state = await mailboxState(dovecot.port, walkUser, pass(walkUser));

    times.sort((a, b) => a - b);
    return {
      cache, target, views: times.length, viewsPerSec: times.length / o.seconds,
      medianMs: quantile(times, 0.5), p95Ms: quantile(times, 0.95), errors,
      proxyCpuMsPerView: after.cpu !== undefined && before!.cpu !== undefined && times.length > 0 ? (after.cpu - before!.cpu) / times.length : null,
      dovecotLogins: after.dovecot - before!.dovecot, roundcubeLogins: after.rc - before!.rc,
      reusePct: d && d.logins > 0 ? (100 * d.reused) / d.logins : null,
      selects: d ? d.selects : null, selectHits: d ? d.hits : null, state,
    };
  } finally {
    await rc.stop();
    await proxy?.stop();
  }
}

/** Several rounds of one configuration: medians of the rates and times, sums of the counts. */
interface Summary {
  cache: boolean;
  target: Target;
  viewsPerSec: number[];
  medianMs: number[];
  p95Ms: number[];
  cpu: number[];
  errors: number;
  roundcubeLogins: number;
  dovecotLogins: number;
  reused: number | null;
  selects: number | null;
  hits: number | null;
  stateEqual: boolean | null;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function summarise(rows: Row[]): Summary[] {
  const out: Summary[] = [];
  for (const r of rows) {
    let s = out.find((x) => x.cache === r.cache && x.target === r.target);
    if (!s) {
      s = { cache: r.cache, target: r.target, viewsPerSec: [], medianMs: [], p95Ms: [], cpu: [], errors: 0, roundcubeLogins: 0, dovecotLogins: 0,
        reused: null, selects: null, hits: null, stateEqual: null };
      out.push(s);
    }
    s.viewsPerSec.push(r.viewsPerSec);
    s.medianMs.push(r.medianMs);
    s.p95Ms.push(r.p95Ms);
    if (r.proxyCpuMsPerView !== null) s.cpu.push(r.proxyCpuMsPerView);
    s.errors += r.errors;
    s.roundcubeLogins += r.roundcubeLogins;
    s.dovecotLogins += r.dovecotLogins;
    if (r.reusePct !== null && r.selects !== null && r.selectHits !== null) {
      // reusePct is of the proxy's own logins in the window; weigh it by Roundcube's
      s.reused = (s.reused ?? 0) + (r.reusePct * r.roundcubeLogins) / 100;
      s.selects = (s.selects ?? 0) + r.selects;
      s.hits = (s.hits ?? 0) + r.selectHits;
    }
    if (r.stateEqual !== undefined && r.stateEqual !== null) s.stateEqual = (s.stateEqual ?? true) && r.stateEqual;
  }
  return out;
}

function table(rows: Row[], o: Options): string {
  const head = ['Roundcube cache', 'target', 'page views/s', 'median ms', 'p95 ms', 'errors', 'Roundcube logins', 'Dovecot logins',
    'reuse %', 'select cache hits', 'proxy CPU ms/view', 'state = direct'];
  const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '-');
  const range = (xs: number[], d = 0): string => (xs.length <= 1 ? fmt(xs[0] ?? NaN, d) : `${fmt(median(xs), d)} (${fmt(Math.min(...xs), d)}-${fmt(Math.max(...xs), d)})`);
  const lines = summarise(rows).map((r) => [
    r.cache ? 'on' : 'off', TARGET_NAME[r.target], range(r.viewsPerSec, 1), range(r.medianMs), range(r.p95Ms), String(r.errors),
    String(r.roundcubeLogins), String(r.dovecotLogins),
    r.reused === null ? '-' : fmt((100 * r.reused) / Math.max(1, r.roundcubeLogins), 1),
    r.selects === null ? '-' : `${r.hits}/${r.selects}${r.selects > 0 ? ` (${fmt((100 * r.hits!) / r.selects)} %)` : ''}`,
    r.cpu.length === 0 ? '-' : range(r.cpu, 2),
    r.stateEqual === null ? (r.target === 'direct' ? '(reference)' : '-') : r.stateEqual ? 'yes' : 'NO',
  ]);
  return [
    `Roundcube 1.6 page views (mail page + list + preview of read mail), ${o.clients} concurrent users, ${o.seconds} s window after ${o.warmup} s warm-up, ` +
      `${o.rounds} round(s) (rates and times: median (min-max) over rounds; counts: sums), both proxies enable_select_cache ${o.selectCache ? 'yes' : 'no'}`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...lines.map((l) => `| ${l.join(' | ')} |`),
  ].join('\n');
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const missing = roundcubeMissing();
  if (missing.length > 0) throw new Error(`Roundcube is not installed (missing ${missing.join(', ')}): bash scripts/install-system-deps.sh`);
  const runs = o.caches.length * o.targets.length * o.rounds;
  // users 1..clients page-view; one fresh walk user per run
  const dovecot = await startDovecot({ users: o.clients + runs });
  const rows: Row[] = [];
  try {
    let walkUser = o.clients;
    for (let round = 0; round < o.rounds; round++) {
      for (const cache of o.caches) {
        // the targets in an order that rotates with the round: load on this shared
        // machine drifts, and each target gets every position once in 3 rounds
        const order = o.targets.map((_, i) => o.targets[(i + round) % o.targets.length]!);
        const roundRows: Row[] = [];
        for (const target of order) {
          walkUser++;
          console.error(`# round ${round + 1}/${o.rounds}, cache ${cache ? 'on' : 'off'}, ${TARGET_NAME[target]} ...`);
          roundRows.push(await oneRun(dovecot, o, target, cache, `user${walkUser}`));
        }
        const ref = roundRows.find((x) => x.target === 'direct');
        for (const r of roundRows) r.stateEqual = r.target === 'direct' || !ref ? null : JSON.stringify(r.state) === JSON.stringify(ref.state);
        rows.push(...roundRows);
      }
    }
  } finally {
    await dovecot.stop();
  }
  // back in the table's order
  rows.sort((a, b) => Number(a.cache) - Number(b.cache) || o.targets.indexOf(a.target) - o.targets.indexOf(b.target));
  console.log(table(rows, o));
  const lost = rows.filter((r) => r.stateEqual === false);
  if (lost.length > 0) {
    console.log('');
    const inbox = (st: Record<string, MessageState[]>): string => (st.INBOX ?? []).map((m) => m.uid).join(',');
    for (const r of lost.filter((x, i) => lost.findIndex((y) => y.cache === x.cache && y.target === x.target) === i)) {
      const ref = rows.find((x) => x.cache === r.cache && x.target === 'direct')!;
      console.log(`state differs, ${TARGET_NAME[r.target]} cache ${r.cache ? 'on' : 'off'}: INBOX UIDs ${inbox(r.state)} (direct: ${inbox(ref.state)})`);
    }
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(`bench/roundcube: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});

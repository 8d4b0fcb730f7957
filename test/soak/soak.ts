// The soak client (issue 8, part 5): many concurrent sessions of a few users
// doing random commands, random pipelining and random drops through the
// proxy, each checking that every reply it receives belongs to it:
//
// - a tagged reply must answer one of this session's own outstanding tags
//   (tags carry the client and session number, so a reply meant for another
//   client, or for this client's previous session, is caught);
// - an untagged reply must make sense for this session: `* SEARCH` only while
//   it has a SEARCH outstanding, `* n FETCH` only while it has a FETCH
//   outstanding on a selected mailbox with at least n messages, `* n EXISTS`
//   only with the right count for the mailbox it selected or is selecting,
//   SELECT response codes only while it is selecting, `* STATUS` only for the
//   mailbox it asked about, with the right count, and so on. Nothing in the
//   test changes a mailbox, so every count is known (INBOX 21, Archive 3).
//
// Used by test/soak-short.test.ts (CI, ~15 s) and bench/soak.sh (longer).
import { setTimeout as sleep } from 'node:timers/promises';
import { RawClient } from '../helpers/transcript.js';
import { scaled } from '../helpers/wait.js';

export interface SoakOptions {
  port: number;
  users: Array<{ user: string; pass: string }>;
  clients: number;
  durationMs: number;
  seed?: number;
  /** Chance that a session drops (no LOGOUT) after a batch, 0..1 (default 0.05). */
  dropRate?: number;
  /** Most commands sent at once (default 4). */
  pipelineMax?: number;
  /** Chance that a FETCH asks for the 3 MiB message (default 0.01). */
  bigFetchRate?: number;
  /** Per-read timeout (default 15000 ms): a reply slower than this is counted as a hang. */
  readTimeoutMs?: number;
}

export interface SoakResult {
  sessions: number;
  logins: number;
  reused: number;
  commands: number;
  replies: number;
  /** Replies that did not belong to the session that received them. Must be 0. */
  foreign: number;
  foreignSamples: string[];
  drops: number;
  idles: number;
  /** Reads that timed out. */
  hangs: number;
  /** Unexpected failures (LOGIN refused, connection closed by the proxy, ...), first few. */
  errors: string[];
  errorCount: number;
  durationMs: number;
}

/** Mailboxes and their message counts (test/helpers/maildir-seed.ts); nothing in the soak changes them. */
const COUNTS: Record<string, number> = { INBOX: 21, Archive: 3 };
const BOXES = Object.keys(COUNTS);
const SELECT_CODES = /^\* OK \[(PERMANENTFLAGS|UIDVALIDITY|UIDNEXT|UNSEEN|HIGHESTMODSEQ|READ-ONLY|READ-WRITE|CLOSED|NOMODSEQ)\b/;

type Kind = 'SELECT' | 'EXAMINE' | 'UNSELECT' | 'FETCH' | 'SEARCH' | 'STATUS' | 'NOOP' | 'LIST' | 'CAPABILITY' | 'IDLE' | 'LOGIN' | 'LOGOUT';

interface Pending {
  tag: string;
  kind: Kind;
  /** The mailbox this command runs in (the last SELECT/EXAMINE before it), or null. */
  box: string | null;
  /** SELECT/EXAMINE/STATUS: the mailbox it names. */
  target?: string;
}

/** xorshift32: deterministic per seed, fast. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const started = Date.now();
  const deadline = started + opts.durationMs;
  const result: SoakResult = {
    sessions: 0, logins: 0, reused: 0, commands: 0, replies: 0, foreign: 0, foreignSamples: [],
    drops: 0, idles: 0, hangs: 0, errors: [], errorCount: 0, durationMs: 0,
  };
  const dropRate = opts.dropRate ?? 0.05;
  const pipelineMax = opts.pipelineMax ?? 4;
  const bigFetchRate = opts.bigFetchRate ?? 0.01;
  // a hang detector: stretched by the load like every other deadline (helpers/wait.ts)
  const readTimeoutMs = scaled(opts.readTimeoutMs ?? 15_000);
  const seed = opts.seed ?? 1;

  const error = (what: string) => {
    result.errorCount++;
    if (result.errors.length < 10) result.errors.push(what);
  };

  const client = async (id: number) => {
    const rand = rng(seed * 7919 + id * 104729 + 1);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    let sessionNo = 0;
    while (Date.now() < deadline) {
      sessionNo++;
      result.sessions++;
      const who = opts.users[(id + sessionNo) % opts.users.length]!;
      const prefix = `c${id}s${sessionNo}t`;
      let tagNo = 0;
      const nextTag = () => `${prefix}${++tagNo}`;
      const outstanding = new Map<string, Pending>();
      /** The mailbox the server is in once every command sent so far has run. */
      let boxAfterSent: string | null = null;
      let c: RawClient | undefined;

      const foreign = (line: string, why: string) => {
        result.foreign++;
        if (result.foreignSamples.length < 10) {
          result.foreignSamples.push(`client ${id} session ${sessionNo} (${who.user}): ${why}: ${line.slice(0, 200)}\n  outstanding: ${[...outstanding.values()].map((p) => `${p.tag} ${p.kind} in ${p.box}`).join(', ')}`);
        }
      };

      /** Checks one server line against this session; returns the completed command for a tagged line. */
      const check = (line: string): Pending | null => {
        result.replies++;
        const all = [...outstanding.values()];
        const has = (...kinds: Kind[]) => all.filter((p) => kinds.includes(p.kind));
        if (line.startsWith('+')) {
          if (has('IDLE').length === 0) foreign(line, 'continuation without IDLE');
          return null;
        }
        if (!line.startsWith('* ')) {
          const tag = line.slice(0, line.indexOf(' '));
          const p = outstanding.get(tag);
          if (!p) {
            foreign(line, tag.startsWith(prefix) ? 'tag already answered' : 'tag of another session');
            return null;
          }
          outstanding.delete(tag);
          return p;
        }
        let m: RegExpExecArray | null;
        if ((m = /^\* (\d+) (EXISTS|RECENT)$/.exec(line))) {
          const n = Number(m[1]);
          const exact = m[2] === 'EXISTS';
          const fits = (box: string | null) => box !== null && (exact ? n === COUNTS[box] : n <= COUNTS[box]!);
          const selecting = has('SELECT', 'EXAMINE').some((p) => fits(p.target!));
          const inBox = all.some((p) => fits(p.box)) || fits(boxAfterSent);
          if (!selecting && !inBox) foreign(line, `${m[2]} does not fit the mailbox`);
        } else if (SELECT_CODES.test(line) || /^\* FLAGS /.test(line)) {
          if (has('SELECT', 'EXAMINE').length === 0) foreign(line, 'SELECT data without SELECT');
        } else if ((m = /^\* (\d+) FETCH /.exec(line))) {
          const n = Number(m[1]);
          const ok = has('FETCH').some((p) => p.box !== null && n <= COUNTS[p.box]!);
          if (!ok) foreign(line, 'FETCH without a FETCH on a mailbox that big');
          else {
            const uid = /\bUID (\d+)/.exec(line);
            if (uid && !has('FETCH').some((p) => p.box !== null && Number(uid[1]) <= COUNTS[p.box]!)) foreign(line, 'UID out of range');
          }
        } else if (line.startsWith('* SEARCH')) {
          const nums = line.slice(8).trim().split(/\s+/).filter(Boolean).map(Number);
          const ok = has('SEARCH').some((p) => p.box !== null && nums.every((x) => x >= 1 && x <= COUNTS[p.box!]!));
          if (!ok) foreign(line, 'SEARCH without a SEARCH on a mailbox that big');
        } else if ((m = /^\* STATUS "?([^" ]+)"? \(MESSAGES (\d+)/.exec(line))) {
          const [box, n] = [m[1]!, Number(m[2])];
          if (!has('STATUS').some((p) => p.target === box) || COUNTS[box] !== n) foreign(line, 'STATUS not asked for, or wrong count');
        } else if (/^\* (LIST|LSUB) /.test(line)) {
          if (has('LIST').length === 0) foreign(line, 'LIST without LIST');
        } else if (line.startsWith('* CAPABILITY ')) {
          if (has('CAPABILITY').length === 0) foreign(line, 'CAPABILITY without CAPABILITY');
        } else if (/^\* \d+ EXPUNGE/.test(line) || /^\* (ESEARCH|ENABLED|NAMESPACE|ID|VANISHED|QUOTA)/.test(line)) {
          foreign(line, 'nothing this session did produces it');
        } else if (line.startsWith('* OK [XPROXYREUSE]')) {
          if (has('LOGIN').length === 0) foreign(line, 'XPROXYREUSE outside LOGIN');
        } else if (line.startsWith('* BYE') || line.startsWith('* OK') || line.startsWith('* NO')) {
          // alerts, "Still here", the proxy's BYE at LOGOUT: nothing to check
        } else {
          foreign(line, 'unknown untagged reply');
        }
        return null;
      };

      /** Reads until every tag in `tags` is answered; returns false if the session ended. */
      const readUntil = async (tags: string[], stopAfterLines = Infinity): Promise<boolean> => {
        const want = new Set(tags);
        let n = 0;
        while ([...want].some((tg) => outstanding.has(tg))) {
          if (n++ >= stopAfterLines) return false;
          let line: string;
          try {
            line = await c!.readLine(readTimeoutMs);
          } catch (err) {
            const msg = (err as Error).message;
            if (/timed out/.test(msg)) {
              result.hangs++;
              error(`client ${id} session ${sessionNo}: ${msg.split('\n')[0]}`);
            } else error(`client ${id} session ${sessionNo}: ${msg.split('\n')[0]} (outstanding ${[...outstanding.keys()].join(' ')})`);
            return false;
          }
          const done = check(line);
          if (done) {
            if (done.kind === 'LOGIN' && !/ OK /.test(line)) error(`client ${id}: LOGIN ${who.user}: ${line}`);
            if ((done.kind === 'SELECT' || done.kind === 'EXAMINE') && !/ OK /.test(line)) error(`client ${id}: ${line}`);
          }
        }
        return true;
      };

      const send = async (p: Pending, text: string) => {
        outstanding.set(p.tag, p);
        result.commands++;
        await c!.send(`${p.tag} ${text}`);
      };

      try {
        c = await RawClient.connect(opts.port, { timeoutMs: readTimeoutMs });
        const loginTag = nextTag();
        await send({ tag: loginTag, kind: 'LOGIN', box: null }, `LOGIN ${who.user} ${who.pass}`);
        const lines: string[] = [];
        // the login reply, read here to see XPROXYREUSE
        while (outstanding.has(loginTag)) {
          const line = await c.readLine(readTimeoutMs);
          lines.push(line);
          check(line);
        }
        if (!lines.at(-1)!.includes(' OK ')) {
          error(`client ${id}: LOGIN ${who.user}: ${lines.at(-1)}`);
          continue;
        }
        result.logins++;
        if (lines[0]!.includes('[XPROXYREUSE]')) result.reused++;

        let alive = true;
        const steps = 1 + Math.floor(rand() * 8);
        for (let step = 0; step < steps && alive && Date.now() < deadline; step++) {
          if (rand() < 0.08) {
            // IDLE alone, DONE after a while (or a drop in the middle of it)
            result.idles++;
            const tag = nextTag();
            await send({ tag, kind: 'IDLE', box: boxAfterSent }, 'IDLE');
            const line = await c.readLine(readTimeoutMs);
            check(line);
            if (!line.startsWith('+')) {
              alive = outstanding.size === 0 || (await readUntil([tag]));
              continue;
            }
            await sleep(20 + Math.floor(rand() * 300));
            if (rand() < dropRate * 2) {
              result.drops++;
              alive = false;
              break;
            }
            await c.send('DONE');
            alive = await readUntil([tag]);
            continue;
          }
          const batch = 1 + Math.floor(rand() * pipelineMax);
          const tags: string[] = [];
          for (let i = 0; i < batch; i++) {
            const tag = nextTag();
            tags.push(tag);
            const r = rand();
            const box = boxAfterSent;
            const count = box ? COUNTS[box]! : 21;
            const seq = () => {
              const a = 1 + Math.floor(rand() * count);
              const b = a + Math.floor(rand() * 4);
              return rand() < 0.2 ? '1:*' : `${a}:${Math.min(b, count)}`;
            };
            if (r < 0.18) {
              const target = pick(BOXES);
              const kind = rand() < 0.5 ? 'SELECT' : 'EXAMINE';
              await send({ tag, kind, box, target }, `${kind} ${target}`);
              boxAfterSent = target;
            } else if (r < 0.22) {
              await send({ tag, kind: 'UNSELECT', box }, 'UNSELECT');
              boxAfterSent = null;
            } else if (r < 0.45) {
              const big = box === 'INBOX' && rand() < bigFetchRate;
              const items = pick(['(FLAGS)', '(UID RFC822.SIZE)', 'ENVELOPE', '(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])', '(BODY.PEEK[TEXT]<0.200>)']);
              const uid = rand() < 0.3;
              await send({ tag, kind: 'FETCH', box }, `${uid ? 'UID ' : ''}FETCH ${big ? '21' : seq()} ${big ? 'BODY.PEEK[]' : items}`);
            } else if (r < 0.62) {
              const crit = pick(['ALL', 'SEEN', 'UNSEEN', 'SUBJECT report', 'FLAGGED', 'TEXT proxy']);
              await send({ tag, kind: 'SEARCH', box }, `${rand() < 0.3 ? 'UID ' : ''}SEARCH ${crit}`);
            } else if (r < 0.75) {
              const target = pick(BOXES);
              await send({ tag, kind: 'STATUS', box, target }, `STATUS ${target} (MESSAGES UIDNEXT)`);
            } else if (r < 0.9) {
              await send({ tag, kind: 'NOOP', box }, 'NOOP');
            } else if (r < 0.95) {
              await send({ tag, kind: 'LIST', box }, 'LIST "" "*"');
            } else {
              await send({ tag, kind: 'CAPABILITY', box }, 'CAPABILITY');
            }
          }
          if (rand() < dropRate) {
            // gone with replies in flight, perhaps after reading a few
            result.drops++;
            if (rand() < 0.5) await readUntil(tags, Math.floor(rand() * 5));
            alive = false;
            break;
          }
          alive = await readUntil(tags);
          await sleep(Math.floor(rand() * 20)); // think time: keeps the CI machine breathing
        }
        if (alive && Date.now() < deadline + 5000) {
          const tag = nextTag();
          await send({ tag, kind: 'LOGOUT', box: boxAfterSent }, 'LOGOUT');
          await readUntil([tag]);
        }
      } catch (err) {
        error(`client ${id} session ${sessionNo}: ${(err as Error).message.split('\n')[0]}`);
      } finally {
        await c?.close();
      }
      await sleep(Math.floor(rand() * 30));
    }
  };

  await Promise.all(Array.from({ length: opts.clients }, (_, i) => client(i + 1)));
  result.durationMs = Date.now() - started;
  return result;
}

export function soakSummary(r: SoakResult): string {
  const reuse = r.logins > 0 ? ((100 * r.reused) / r.logins).toFixed(1) : '0';
  return (
    `${(r.durationMs / 1000).toFixed(1)} s: ${r.sessions} sessions, ${r.logins} logins (${reuse}% reused), ` +
    `${r.commands} commands, ${r.replies} replies, ${r.drops} drops, ${r.idles} IDLEs, ` +
    `foreign replies ${r.foreign}, hangs ${r.hangs}, errors ${r.errorCount}`
  );
}

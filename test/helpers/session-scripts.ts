// Random first sessions for the differential reuse test: what a client, an
// unusual client or an attacker may do on a server connection before it goes
// back to the pool. Every command of the command-traits table appears, with
// the forms that switch session state on; unknown commands, literals
// (synchronising or not, sent without waiting), smuggling attempts, long
// sequence sets, pipelining, and endings of every kind. Seeded: a failure is
// replayed from its seed.
import { prng } from './prng.js';

/** One write of the client: raw bytes, and the tags whose tagged replies it then waits for. */
export interface Step {
  bytes: string;
  tags: string[];
  /** Wait for a `+` before the next step (a synchronising literal, IDLE). */
  continuation?: boolean;
}

export type Ending = 'logout' | 'drop' | 'drop-mid-line' | 'drop-unread';

export interface SessionScript {
  seed: number;
  steps: Step[];
  ending: Ending;
}

type Make = (tag: string, r: () => number) => Step[];

const one = (line: string): Make => (tag) => [{ bytes: `${tag} ${line}\r\n`, tags: [tag] }];
const pick = <T>(r: () => number, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;

const MESSAGE = 'From: a@example.org\r\nSubject: differential\r\n\r\nbody\r\n';

/** What ordinary clients send: a session of only these is cached. */
const ORDINARY: Make[] = [
  one('NOOP'), one('CAPABILITY'), one('ID NIL'), one('NAMESPACE'), one('LIST "" "*"'), one('LSUB "" "*"'),
  one('STATUS INBOX (MESSAGES UNSEEN UIDNEXT)'), one('SELECT INBOX'), one('SELECT INBOX'), one('EXAMINE INBOX'), one('SELECT Archive'),
  one('UNSELECT'), one('CLOSE'), one('FETCH 1:3 (FLAGS)'), one('UID FETCH 1:* (FLAGS RFC822.SIZE)'),
  one('FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]'), one('FETCH 2 BODY[TEXT]'), one('UID SEARCH UNSEEN'),
  one('UID SORT (REVERSE ARRIVAL) US-ASCII ALL'), one('UID STORE 3 +FLAGS (\\Seen)'), one('UID STORE 3 -FLAGS.SILENT (\\Seen)'),
  one('STORE 4 +FLAGS ($Label1)'), one('GETQUOTAROOT INBOX'), one('SUBSCRIBE Archive'), one('CHECK'), one('EXPUNGE'),
  (tag, r) => [{ bytes: `${tag} CREATE tmp${Math.floor(r() * 3)}\r\n`, tags: [tag] }],
  (tag, r) => [{ bytes: `${tag} DELETE tmp${Math.floor(r() * 3)}\r\n`, tags: [tag] }],
  (tag) => [{ bytes: `${tag} COPY 1 Archive\r\n`, tags: [tag] }],
  (tag) => [{ bytes: `${tag} APPEND Archive {${MESSAGE.length}+}\r\n${MESSAGE}\r\n`, tags: [tag] }],
  (tag) => [
    { bytes: `${tag} APPEND Archive (\\Seen) {${MESSAGE.length}}\r\n`, tags: [], continuation: true },
    { bytes: `${MESSAGE}\r\n`, tags: [tag] },
  ],
  // IDLE, ended properly
  (tag) => [{ bytes: `${tag} IDLE\r\n`, tags: [], continuation: true }, { bytes: 'DONE\r\n', tags: [tag] }],
  // state kept with the selection, which the proxy undoes
  one('UID SEARCH RETURN (SAVE) 1:3'), one('SEARCH RETURN (UPDATE) UNSEEN'), one('SEARCH RETURN (MIN SAVE) ALL'),
  // a long sequence set
  (tag) => [{ bytes: `${tag} UID FETCH ${Array.from({ length: 2500 }, (_, i) => 100 + i).join(',')} (FLAGS)\r\n`, tags: [tag] }],
];

/** What switches session state on that cannot be undone, or what the proxy does not understand. */
const UNUSUAL: Make[] = [
  // session state switched on
  one('ENABLE CONDSTORE'), one('ENABLE QRESYNC'), one('STATUS INBOX (MESSAGES HIGHESTMODSEQ)'), one('SELECT INBOX (CONDSTORE)'),
  one('LIST "" "INBOX" RETURN (STATUS (HIGHESTMODSEQ))'), one('UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)'), one('FETCH 1 (MODSEQ)'),
  one('SEARCH MODSEQ 1'), one('UID STORE 5 (UNCHANGEDSINCE 999999) +FLAGS ($Label2)'),
  (tag) => [{ bytes: `${tag} STATUS {5+}\r\nINBOX (HIGHESTMODSEQ)\r\n`, tags: [tag] }],
  (tag) => [{ bytes: `${tag} UID SEARCH SUBJECT {1+}\r\nx MODSEQ 1\r\n`, tags: [tag] }],
  // a long sequence set, the state-changing word far beyond 8 KiB
  (tag) => [{ bytes: `${tag} UID FETCH ${Array.from({ length: 2500 }, (_, i) => 100 + i).join(',')} (FLAGS) (CHANGEDSINCE 1)\r\n`, tags: [tag] }],
  // a synchronising literal sent without waiting for `+`
  (tag) => [{ bytes: `${tag} APPEND Archive {${MESSAGE.length}}\r\n${MESSAGE}\r\n`, tags: [tag] }],
  (tag) => [{ bytes: `${tag} APPEND Nonexistent {${MESSAGE.length}+}\r\n${MESSAGE}\r\n`, tags: [tag] }],
  // not understood
  one('XFOO'), one('X-NOTHING here'), one('XPROXY_TRACE user1'), one('LOGIN user1 pass1'), one('NOOP extra'), one('FETCH'),
  one('UID FOO 1'), one('SELECT INBOX extra'),
  (tag) => [{ bytes: 'this line has no command\r\n', tags: [] }, { bytes: `${tag} NOOP\r\n`, tags: [tag] }],
  // smuggling: a command hidden in the literal of one the server refuses early
  (tag, r) => {
    const inner = `h${tag} ${pick(r, ['SELECT INBOX', 'ENABLE CONDSTORE', 'EXAMINE Archive', 'SEARCH RETURN (SAVE) ALL', 'NOOP'])}\r\n`;
    const outer = pick(r, ['FOO', 'NOOP', 'XPROXY_TRACE', 'FETCH 1', 'LOGIN']);
    const plus = r() < 0.7 ? '+' : '';
    // an empty line after it ends the outer command for the proxy: both agree on the framing again
    const resync = r() < 0.6 ? '\r\n' : '';
    return [{ bytes: `${tag} ${outer} {${inner.length}${plus}}\r\n${inner}${resync}`, tags: [tag, `h${tag}`] }];
  },
];

/** A random first session. */
export function sessionScript(seed: number): SessionScript {
  const r = prng(seed);
  const steps: Step[] = [];
  const count = 1 + Math.floor(r() * 6);
  for (let i = 0; i < count; i++) {
    const made = pick(r, r() < 0.85 ? ORDINARY : UNUSUAL)(`s${i}`, r);
    // pipelining: sometimes merge this command's writes into the previous one
    const last = steps.at(-1);
    if (last && !last.continuation && made.length === 1 && r() < 0.3) {
      last.bytes += made[0]!.bytes;
      last.tags.push(...made[0]!.tags);
    } else {
      steps.push(...made);
    }
  }
  const ending = pick(r, ['logout', 'logout', 'logout', 'logout', 'drop', 'drop', 'drop-mid-line', 'drop-unread'] as const);
  // COMPRESS last: after it nothing of ours is readable by the server
  if (r() < 0.05) steps.push({ bytes: 'sz COMPRESS DEFLATE\r\n', tags: ['sz'] });
  return { seed, steps, ending: steps.at(-1)?.bytes.includes('COMPRESS') ? 'drop' : ending };
}

/** The fixed probe: what a session that starts on a reused connection may notice of an earlier one. */
export const PROBE = [
  'p01 FETCH 1 (FLAGS)',
  'p02 FETCH $ (UID)',
  'p03 NOOP',
  'p04 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)',
  'p05 SELECT INBOX',
  'p06 FETCH $ (UID)',
  'p07 FETCH 1:2 (UID FLAGS)',
  'p08 STORE 1 +FLAGS ($Probe)',
  'p09 STORE 1 -FLAGS ($Probe)',
  'p10 SEARCH RETURN (MIN) ALL',
  'p11 NOOP',
  'p12 UNSELECT',
  'p13 FETCH 1 (FLAGS)',
  'p14 NOOP',
];

/**
 * What may differ between two sessions that saw the same mailbox: Dovecot's
 * timings, which session claimed \Recent first, and the values (not the
 * presence) of modification sequences, which the probe itself moves on.
 */
export function normaliseProbeLine(line: string): string {
  return line
    .replace(/ \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)/, '')
    .replace(/^\* \d+ RECENT$/, '* n RECENT')
    .replace(/ ?\\Recent/g, '')
    .replace(/\(\s+/g, '(')
    .replace(/HIGHESTMODSEQ \d+/g, 'HIGHESTMODSEQ n')
    .replace(/MODSEQ \(\d+\)/g, 'MODSEQ (n)');
}

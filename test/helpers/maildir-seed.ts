// Deterministic test mail, written as Maildir files directly (no LDA, no APPEND):
// each message is written once into a template dir and hard-linked into every
// user's maildir (maildir files are never modified in place, so sharing is safe).
// Port of /work/shared/bench/seed_maildir.py, smaller.
//
// INBOX, UIDs 1..20: small text messages (1-4 KB) whose headers exercise ENVELOPE
//   encoding: raw 8-bit UTF-8 subject (-> literal), quotes, backslashes, parens,
//   "{5}" look-alikes, empty and missing Subject (-> "" and NIL), folded long
//   subject, RFC 2047 words, group addresses, quoted display names with commas.
// INBOX, UID 21: a ~3 MiB multipart message with a base64 attachment.
// Archive, UIDs 1..3: small messages.
// Dovecot gives new maildir files UIDs in file-name (timestamp) order.
import { chownSync, linkSync, mkdirSync, utimesSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { prng } from './prng.js';

export interface SeedMessage {
  /** UID and sequence number in a freshly seeded mailbox. */
  uid: number;
  /** Decoded Subject header value as written (undefined: no Subject header). */
  subject: string | undefined;
  /** IMAP flags it starts with. */
  flags: string[];
  /** RFC822.SIZE as an IMAP server reports it (LF line ends counted as CRLF). */
  size: number;
  /** Bytes in the maildir file (LF line ends). */
  physicalSize: number;
  /** Message-ID header value, without angle brackets. */
  messageId: string;
  /** Unix seconds of the Date header and of INTERNALDATE. */
  date: number;
  data: Buffer;
}

export interface SeedMailbox {
  name: string;
  messages: SeedMessage[];
}

export const BIG_MESSAGE_TARGET_BYTES = 3 * 1024 * 1024;
const BASE_TS = 1_700_000_000;
const HOST = 'imapproxy-test';

// Maildir flag letters in the order maildir requires (alphabetical).
const MAILDIR_FLAG: Record<string, string> = {
  '\\Draft': 'D', '\\Flagged': 'F', '\\Answered': 'R', '\\Seen': 'S',
};

const SUBJECTS: Array<string | undefined> = [
  'Weekly report 1',
  'Quote "test" message',
  'Grüße aus München — Nachricht 3',
  'Backslash \\ and parens ()',
  '=?UTF-8?B?w4lsw6h2ZSBudW3DqXJv?= 5',
  '',
  undefined,
  'Re: [list] status update 8',
  'Literal look-alike {5} in subject 9',
  'Percent % and star * 10',
  'A rather long subject line that goes on and on so that the header has to be folded ' +
    'across more than one physical line in the message file 11',
  'Fwd: Invoice 12 attached',
  '日本語の件名 13',
  'Tab\tseparated subject 14',
  'Trailing spaces 15   ',
  'Re: Re: Re: thread 16',
  '"Fully quoted subject 17"',
  'Mixed \\"escapes\\" 18',
  'Plain subject 19',
  'Last small message 20',
];

const WORDS = ('imap proxy cache server client mailbox message folder select fetch envelope header ' +
  'body literal session login logout connection pool latency webmail dovecot quota flag seen').split(' ');


function textBody(rnd: () => number, approxBytes: number): string {
  const lines: string[] = [];
  let total = 0;
  while (total < approxBytes) {
    const n = 6 + Math.floor(rnd() * 6);
    const line = Array.from({ length: n }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' ').slice(0, 76);
    lines.push(line);
    total += line.length + 1;
  }
  return lines.join('\n') + '\n';
}

function rfc2822Date(ts: number): string {
  // e.g. "Tue, 14 Nov 2023 22:13:20 +0000"
  return new Date(ts * 1000).toUTCString().replace('GMT', '+0000');
}

function foldHeader(name: string, value: string): string {
  const line = `${name}: ${value}`;
  if (line.length <= 78) return line;
  const words = value.split(' ');
  const out: string[] = [];
  let cur = `${name}:`;
  for (const w of words) {
    if (cur.length + 1 + w.length > 76 && cur !== `${name}:`) {
      out.push(cur);
      cur = ` ${w}`;
    } else {
      cur += ` ${w}`;
    }
  }
  out.push(cur);
  return out.join('\n');
}

const TO_HEADERS = [
  'Test User <user@example.test>',
  '"Doe, Jane" <jane@example.test>, bob@example.test',
  'undisclosed-recipients:;',
  'Team: alice@example.test, "Bob (B)" <bob@example.test>;',
];

function message(mailboxTag: string, index: number, subject: string | undefined, ts: number, rnd: () => number): Buffer {
  const headers = [
    `Return-Path: <sender${index % 5}@example.test>`,
    `Message-ID: <${mailboxTag}-${index}@${HOST}.example.test>`,
    `Date: ${rfc2822Date(ts)}`,
    `From: "Sender ${index % 5}" <sender${index % 5}@example.test>`,
    `To: ${TO_HEADERS[index % TO_HEADERS.length]}`,
  ];
  if (index % 3 === 0) headers.push('Cc: "Team, Test" <team@example.test>');
  if (index % 4 === 0) headers.push(`In-Reply-To: <${mailboxTag}-${index - 1}@${HOST}.example.test>`);
  if (subject !== undefined) headers.push(foldHeader('Subject', subject));
  headers.push(
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    `X-Test-Index: ${mailboxTag}-${index}`,
  );
  const body = textBody(rnd, 1000 + Math.floor(rnd() * 3000));
  return Buffer.from(headers.join('\n') + '\n\n' + body, 'utf8');
}

function bigMessage(ts: number, rnd: () => number): Buffer {
  const boundary = '=_imapproxy_test_boundary_0001';
  const head = Buffer.from(
    [
      'Return-Path: <bulk@example.test>',
      `Message-ID: <inbox-big@${HOST}.example.test>`,
      `Date: ${rfc2822Date(ts)}`,
      'From: Bulk Sender <bulk@example.test>',
      'To: Test User <user@example.test>',
      'Subject: Large 3 MiB message',
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      'X-Test-Index: inbox-big',
      '',
      'This is a multi-part message in MIME format.',
      `--${boundary}`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'See attachment.',
      `--${boundary}`,
      'Content-Type: application/octet-stream; name="blob.bin"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="blob.bin"',
      '',
      '',
    ].join('\n'),
    'ascii',
  );
  const tail = Buffer.from(`\n--${boundary}--\n`, 'ascii');
  // base64 in 76-char lines + LF: 57 raw bytes -> 77 file bytes
  const lines = Math.floor((BIG_MESSAGE_TARGET_BYTES - head.length - tail.length) / 77);
  const raw = Buffer.alloc(lines * 57);
  for (let i = 0; i < raw.length; i += 4) raw.writeUInt32LE((rnd() * 4294967296) >>> 0, i);
  const b64 = raw.toString('base64');
  const body = Buffer.alloc(lines * 77);
  for (let l = 0; l < lines; l++) {
    body.write(b64.slice(l * 76, l * 76 + 76), l * 77, 'ascii');
    body[l * 77 + 76] = 0x0a;
  }
  return Buffer.concat([head, body.subarray(0, body.length - 1), tail]);
}

function seedMessage(uid: number, subject: string | undefined, flags: string[], ts: number, data: Buffer, messageId: string): SeedMessage {
  let lf = 0;
  let crlf = 0;
  for (let i = data.indexOf(0x0a); i !== -1; i = data.indexOf(0x0a, i + 1)) {
    lf++;
    if (i > 0 && data[i - 1] === 0x0d) crlf++;
  }
  return { uid, subject, flags, size: data.length + lf - crlf, physicalSize: data.length, messageId, date: ts, data };
}

let cached: SeedMailbox[] | undefined;

/** The seeded mailboxes (INBOX first), identical for every user and every run. */
export function seedMailboxes(): SeedMailbox[] {
  if (cached) return cached;
  const rnd = prng(20240601);
  const inbox: SeedMessage[] = SUBJECTS.map((subject, k) => {
    const uid = k + 1;
    const ts = BASE_TS + uid * 3600;
    const flags: string[] = [];
    if (uid % 5 === 0) flags.push('\\Answered');
    if (uid === 4 || uid === 17) flags.push('\\Flagged');
    if (uid % 3 === 0) flags.push('\\Seen');
    if (uid === 19) flags.push('\\Draft');
    return seedMessage(uid, subject, flags, ts, message('inbox', uid, subject, ts, rnd), `inbox-${uid}@${HOST}.example.test`);
  });
  const bigTs = BASE_TS + 21 * 3600;
  inbox.push(seedMessage(21, 'Large 3 MiB message', [], bigTs, bigMessage(bigTs, rnd), `inbox-big@${HOST}.example.test`));
  const archive = [1, 2, 3].map((uid) => {
    const ts = BASE_TS - 86400 * (4 - uid);
    const subject = `Archived message ${uid}`;
    return seedMessage(uid, subject, ['\\Seen'], ts, message('archive', uid, subject, ts, rnd), `archive-${uid}@${HOST}.example.test`);
  });
  cached = [
    { name: 'INBOX', messages: inbox },
    { name: 'Archive', messages: archive },
  ];
  return cached;
}

function maildirBaseName(mailbox: string, m: SeedMessage): string {
  const idx = mailbox === 'INBOX' ? m.uid : 100 + m.uid;
  return `${m.date}.M${idx}P1.${HOST},S=${m.physicalSize},W=${m.size}`;
}

function maildirFlags(m: SeedMessage): string {
  return m.flags.map((f) => MAILDIR_FLAG[f]!).sort().join('');
}

export interface SeedOptions {
  mailRoot: string;
  users: string[];
  uid: number;
  gid: number;
}

/**
 * Writes the templates under mailRoot/.templates and builds mailRoot/<user>/Maildir for
 * every user (INBOX + .Archive, Maildir++ layout), owned by uid:gid. Synchronous:
 * a few hundred small fs calls, faster than scheduling them.
 */
export function seedMaildirs(opts: SeedOptions): void {
  const { mailRoot, uid, gid } = opts;
  const mkdirOwned = (dir: string, mode = 0o700): void => {
    mkdirSync(dir, { recursive: true, mode });
    chownSync(dir, uid, gid);
  };
  const tdir = path.join(mailRoot, '.templates');
  mkdirOwned(tdir);
  const boxes = seedMailboxes();
  const templates: Array<{ box: string; name: string; flags: string }> = [];
  for (const box of boxes) {
    for (const m of box.messages) {
      const name = maildirBaseName(box.name, m);
      const file = path.join(tdir, name);
      writeFileSync(file, m.data, { mode: 0o600 });
      chownSync(file, uid, gid);
      utimesSync(file, m.date, m.date); // INTERNALDATE
      templates.push({ box: box.name, name, flags: maildirFlags(m) });
    }
  }
  for (const user of opts.users) {
    const home = path.join(mailRoot, user);
    const md = path.join(home, 'Maildir');
    mkdirOwned(home);
    for (const box of boxes) {
      const boxDir = box.name === 'INBOX' ? md : path.join(md, `.${box.name}`);
      for (const sub of ['', 'cur', 'new', 'tmp']) mkdirOwned(path.join(boxDir, sub));
      if (box.name !== 'INBOX') {
        const marker = path.join(boxDir, 'maildirfolder');
        writeFileSync(marker, '');
        chownSync(marker, uid, gid);
      }
    }
    const subs = path.join(md, 'subscriptions');
    writeFileSync(subs, boxes.filter((b) => b.name !== 'INBOX').map((b) => `${b.name}\n`).join(''));
    chownSync(subs, uid, gid);
    chmodSync(subs, 0o600);
    for (const t of templates) {
      const boxDir = t.box === 'INBOX' ? md : path.join(md, `.${t.box}`);
      linkSync(path.join(tdir, t.name), path.join(boxDir, 'cur', `${t.name}:2,${t.flags}`));
    }
  }
}

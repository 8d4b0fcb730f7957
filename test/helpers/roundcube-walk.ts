// What a Roundcube user does, as scripted sequences of RoundcubeClient clicks
// (test/roundcube.test.ts and the bench share them), and the mailbox state
// afterwards, read straight from Dovecot, to compare a run through a proxy with
// the same run straight to Dovecot.
import { createImapClient } from './imapflow.js';
import { RoundcubeClient } from './roundcube-client.js';

/** The message another client has flagged \Deleted before the walk: a move must not expunge it. */
export const DELETED_BY_OTHER_CLIENT = 5;
/** The message the walk moves to Trash and back. */
export const MOVED = 3;

export interface WalkOutcome {
  /** INBOX count Roundcube showed at the start and at the end. */
  countBefore: number;
  countAfter: number;
  /** Folder names of Settings > Folders. */
  folders: string[];
  /** INBOX count Roundcube reported right after the move to Trash. */
  countAfterMove: number;
}

/** Another client (straight to the server) flags DELETED_BY_OTHER_CLIENT \Deleted without expunging. */
export async function flagDeletedElsewhere(serverPort: number, user: string, pass: string): Promise<void> {
  const c = createImapClient({ port: serverPort, user, pass });
  await c.connect();
  try {
    await c.mailboxOpen('INBOX');
    await c.messageFlagsAdd(String(DELETED_BY_OTHER_CLIENT), ['\\Deleted'], { uid: true });
  } finally {
    await c.logout();
  }
}

/**
 * Login, list, preview, mark read and flagged, move to Trash and back, the folder
 * list, logout: every click a user of the webmail makes in a minute.
 */
export async function roundcubeWalk(base: string, user: string, pass: string): Promise<WalkOutcome> {
  const rc = new RoundcubeClient(base);
  await rc.login(user, pass);
  const before = await rc.list('INBOX');
  const first = before.rows.find((r) => r.uid === 1);
  if (!first) throw new Error(`Roundcube's INBOX list of ${user} has no UID 1: ${JSON.stringify(before.rows.map((r) => r.uid))}`);
  const page = await rc.preview(1);
  if (!page.includes(first.subject.replace(/&/g, '&amp;'))) throw new Error(`preview of UID 1 does not show its subject "${first.subject}"`);
  await rc.mark([2], 'read');
  await rc.mark([6], 'flagged');
  await rc.mark([8], 'unread');
  const countAfterMove = await rc.move([MOVED], 'INBOX', 'Trash');
  await rc.openMailbox('Trash');
  const trash = await rc.list('Trash');
  if (trash.rows.length !== 1) throw new Error(`Trash of ${user} shows ${trash.rows.length} messages after the move, not 1`);
  await rc.move([trash.rows[0]!.uid], 'Trash', 'INBOX');
  await rc.openMailbox('INBOX');
  const folders = await rc.folders();
  const after = await rc.list('INBOX');
  await rc.logout();
  return { countBefore: before.count, countAfter: after.count, countAfterMove, folders };
}

/**
 * One page view as a browser makes it when a user opens the inbox and reads a
 * message: the mail page, its message list (AJAX), the preview of one message.
 */
export async function pageView(rc: RoundcubeClient, uid: number): Promise<void> {
  await rc.openMailbox('INBOX');
  await rc.list('INBOX');
  await rc.preview(uid);
}

export interface MessageState {
  uid: number;
  subject: string;
  flags: string[];
}

/** Every mailbox of `user` with its messages (UID, subject, flags without \Recent), read straight from the server. */
export async function mailboxState(serverPort: number, user: string, pass: string): Promise<Record<string, MessageState[]>> {
  const c = createImapClient({ port: serverPort, user, pass });
  await c.connect();
  const out: Record<string, MessageState[]> = {};
  try {
    const boxes = (await c.list()).map((b) => b.path).sort();
    for (const box of boxes) {
      const opened = await c.mailboxOpen(box, { readOnly: true });
      const msgs: MessageState[] = [];
      if (opened.exists > 0) for await (const m of c.fetch('1:*', { uid: true, flags: true, envelope: true })) {
        msgs.push({
          uid: m.uid,
          subject: m.envelope?.subject ?? '',
          flags: [...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort(),
        });
      }
      out[box] = msgs.sort((a, b) => a.uid - b.uid);
    }
  } finally {
    await c.logout();
  }
  return out;
}

/** Roundcube's IMAP logins (LOGIN or AUTHENTICATE commands) in its imap_debug log. */
export function roundcubeLogins(imapLog: string[]): number {
  return imapLog.filter((l) => /\] C: \S+ (LOGIN|AUTHENTICATE) /i.test(l)).length;
}

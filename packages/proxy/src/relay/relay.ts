// The authenticated phase (SPEC §4.11, improved). Bytes go both ways as they
// came, but both directions run through the scanner so the relay always knows
// each client command's tag and name and which tags the server has completed.
// That knowledge is what makes a server connection safe to cache: it is only
// released once no command is outstanding, IDLE is over and no mailbox is
// selected (SPEC §11 B4, S3: the next session never sees a byte of this one).
//
// With enable_select_cache (SPEC §5, B3 fixed; select-cache.ts) a mailbox may
// stay selected when the session ends, together with a cached SELECT reply
// that is known to be current. The next session inherits that selection
// without seeing it: a SELECT of the same mailbox may be answered from the
// cache; before any other command that could show the mailbox, the proxy
// unselects it, and until then responses about it are kept from the client.

import type { Socket } from 'node:net';
import { completesTag, ImapScanner, ProtocolError, readClientCommand, type CommandUse, type ProxyConfig, type Segment } from '@imapproxy/shared';
import type { BackendConnection } from '../backend/backend-connection.js';
import { requestedKey } from '../backend/enabled-origin.js';
import { nextTag } from '../backend/tags.js';
import { ClientWriter } from './client-writer.js';
import { MailboxWatch } from './mailbox-watch.js';
import { ReuseProof, untaggedSign, type TaintKind } from './reuse-proof.js';
import { buildEntry, cacheableSelect, keepsSelectCache, sameMailbox, SELECT_CACHE_MAX_BYTES, selectCacheSlot, type SelectCacheSlot } from './select-cache.js';

type RelayConfig = Pick<ProxyConfig, 'max_line_length' | 'max_pending_commands' | 'resync_timeout' | 'idle_timeout' | 'enable_select_cache'>;

/** How the relay ended: the connection is clean and may be cached, or not. */
export type RelayOutcome = { reusable: true } | { reusable: false; reason: string };

export interface RelayHooks {
  /** Called once, when the server connection's fate is known. */
  done(outcome: RelayOutcome): void;
  log: { info(m: string): void; notice(m: string): void; err(m: string): void };
  /**
   * The client left without LOGOUT and the connection was brought back to a
   * clean state (ok) or not within resync_timeout (the stats file's
   * resyncsOk / resyncsFailed, which nothing counted before).
   */
  resync?(ok: boolean): void;
  /** A client SELECT with enable_select_cache on: answered from the cache (hit) or by the server. */
  selectCommand?(hit: boolean): void;
  /** Observers of both directions (protocol trace). */
  trace?: { client(data: Buffer): void; server(data: Buffer): void };
  /** The session did something the proxy did not understand: its connection will not be cached (reuse-proof.ts). */
  tainted?(kind: TaintKind, reason: string): void;
}

interface Outstanding {
  name: string;
  /** SELECT or EXAMINE. */
  selects: boolean;
  /** CLOSE or UNSELECT. */
  unselects: boolean;
  /** The command carried a literal: a refusal may mean the server read its data as commands. */
  literal: boolean;
  /** A STATUS the proxy let run on the mailbox an earlier session left selected. */
  onInherited?: boolean;
}

/**
 * A client command held back while the proxy's NOOP finds out whether the
 * cached SELECT reply (and so the session's view of the inherited mailbox)
 * is current: a SELECT of that mailbox, answered from the cache on a hit; or
 * a STATUS of it (Roundcube sends one before its SELECT), which may then run
 * on the inherited selection: a current view answers as a fresh login would.
 */
interface SelectCheck {
  kind: 'select' | 'status';
  tag: string;
  mailbox: Buffer;
  /** The client's command line, sent to the server after all on a miss. */
  bytes: Buffer;
  use: CommandUse | null;
}

/** The reply of a forwarded SELECT, collected to be cached once it completes OK. */
interface SelectStore {
  tag: string;
  mailbox: Buffer;
  parts: Buffer[];
  size: number;
  tooLarge: boolean;
}

/** Server lines longer than this are still relayed; only their head is read. */
const SERVER_LINE_LIMIT = Number.MAX_SAFE_INTEGER;
/** Enough for the response code or the FETCH items that show session state (reuse-proof.ts). */
const SERVER_HEAD = 256;
/**
 * With the select cache the whole text of a response line is read (literal
 * data excepted): a FETCH's FLAGS may come after its ENVELOPE. Longer lines
 * count as changes (mailbox-watch.ts).
 */
const SERVER_HEAD_SELECT_CACHE = 64 * 1024;
const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n', 'latin1');


export class Relay {
  private readonly clientScanner: ImapScanner;
  private readonly serverScanner: ImapScanner;
  /** Client commands sent to the server and not completed yet, by tag. */
  private readonly outstanding = new Map<string, Outstanding>();
  /** Commands the proxy itself sent, by tag, with what to do on their completion (status OK/NO/BAD). */
  private readonly own = new Map<string, (status: string) => void>();
  /** Bytes of a client segment that has not ended yet. */
  private heldClient: Buffer[] = [];
  private clientCursor = 0;
  private forwardClient: Buffer[] = [];
  private idleTag: string | null = null;
  /** DONE was sent for the current IDLE. */
  private idleDone = false;
  /** Tag of the command whose segments are arriving. */
  private currentTag: string | null = null;
  private authTag: string | null = null;
  /** The server sent `+` for the current IDLE. */
  private idleContinued = false;
  /** Tag of the command whose synchronising literal awaits the server's `+`. */
  private literalTag: string | null = null;
  /** Synchronising literals sent and not yet answered by `+` (or refused). */
  private literalsAwaiting = 0;
  /** The lines so far of a client command that goes on after a literal, or null. */
  private reading: Buffer[] | null = null;
  private readonly proof: ReuseProof;
  /** State kept with the selected mailbox ($, search updates): it is unselected, not kept, at the end. */
  private selectionState: string | null = null;
  /** The first ENABLE of the connection, on its way: its answer is kept (BackendConnection.enabledBy). */
  private enableRecord: { tag: string; requested: string; lines: Buffer[] } | null = null;
  private compressTag: string | null = null;
  /** COMPRESS is active: bytes are passed through without being read. */
  private raw = false;
  private phase: 'relay' | 'logout' | 'drain' | 'done' = 'relay';
  private logoutTag: string | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  /** Back-pressure from the server: the client is paused until it drains. */
  private clientPaused = false;
  private serverPaused = false;
  /** Writes to the client that lend the server connection's read buffer and take it back. */
  private readonly toClient: ClientWriter;
  /** The client left without LOGOUT: the ending is a resync (RelayHooks.resync). */
  private resyncing = false;
  private readonly onServerGone: (err?: Error) => void;

  // Server -> client routing. Each server response is forwarded or dropped as
  // a whole (the proxy's own replies, news about an inherited mailbox); the
  // decision is taken when its first line is complete.
  private sChunk: Buffer = EMPTY;
  /** Bytes of sChunk already routed. */
  private sPos = 0;
  /** Start of the bytes of sChunk to forward in one write, or -1. */
  private sFwdFrom = -1;
  /** The start of a response whose first line is not complete yet, from earlier chunks. */
  private sHeld: Buffer[] = [];
  private sRoute: 'forward' | 'drop' = 'forward';
  /** The next server segment starts a new response. */
  private sNextFirst = true;
  /** The start of the current response went out before its first line was complete. */
  private sStartForwarded = false;

  // Select cache.
  private readonly selectCache: boolean;
  private readonly slot: SelectCacheSlot;
  private readonly watch: MailboxWatch;
  /** The client believes a mailbox is selected (for the `[CLOSED]` of a cached reply). */
  private clientSelected = false;
  /**
   * The server has a mailbox selected that this session did not select (kept
   * by the previous session for the select cache). Cleared once the proxy
   * unselected it (the UNSELECT completed) or a cache hit gave it to the client.
   */
  private inherited: boolean;
  /** The UNSELECT of the inherited mailbox is on its way (sent once; `inherited` holds until it completes). */
  private unselectingInherited = false;
  private check: SelectCheck | null = null;
  /** Client data that arrived during a check, replayed after it. */
  private deferredClient: Buffer[] = [];
  private store: SelectStore | null = null;

  constructor(
    private readonly client: Socket,
    private readonly conn: BackendConnection,
    private readonly config: RelayConfig,
    private readonly hooks: RelayHooks,
  ) {
    // Not a live option (reload): one value for the whole session.
    this.selectCache = config.enable_select_cache;
    this.slot = selectCacheSlot(conn);
    this.watch = new MailboxWatch(this.slot);
    this.inherited = conn.selected;
    this.watch.strict = this.inherited;
    this.toClient = new ClientWriter(client, conn);
    this.proof = new ReuseProof(conn, hooks);
    this.clientScanner = new ImapScanner(
      {
        segment: (seg, chunk, end) => this.onClientSegment(seg, chunk, end),
        literal: (chunk, start, end) => {
          this.forwardClient.push(chunk.subarray(start, end));
          this.clientCursor = end;
        },
      },
      // The whole line is read: every argument decides whether the session was understood.
      { maxLineLength: config.max_line_length, headLimit: config.max_line_length },
    );
    this.serverScanner = new ImapScanner(
      {
        segment: (seg, chunk, end) => this.onServerSegment(seg, chunk, end),
        literal: (_chunk, _start, end) => this.routeTo(end, this.sRoute),
      },
      { maxLineLength: SERVER_LINE_LIMIT, headLimit: this.selectCache ? SERVER_HEAD_SELECT_CACHE : SERVER_HEAD },
    );
    this.onServerGone = () => this.serverGone();
  }

  /** Starts relaying; `pendingClient` are bytes the client sent after its login command. */
  start(pendingClient: Buffer, pendingServer: Buffer): void {
    const { client, conn } = this;
    conn.onClose(this.onServerGone);
    conn.setHandler((chunk) => this.onServerData(chunk));
    client.on('data', this.onClientData);
    client.on('close', this.onClientClose);
    client.on('error', this.onClientClose);
    client.setTimeout(this.config.idle_timeout * 1000, this.onIdleTimeout);
    if (pendingServer.length > 0) this.onServerData(pendingServer);
    if (pendingClient.length > 0) this.onClientData(pendingClient);
    this.updateClientFlow();
  }

  // --- client -> server ----------------------------------------------------

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.phase !== 'relay') return;
    this.hooks.trace?.client(chunk);
    if (this.check !== null) {
      // The client was paused for the check; bytes already on their way wait for its outcome.
      this.deferredClient.push(chunk);
      return;
    }
    this.processClient(chunk);
  };

  private processClient(chunk: Buffer): void {
    if (this.raw) {
      this.writeServer(chunk);
      return;
    }
    this.clientCursor = 0;
    try {
      this.clientScanner.push(chunk);
    } catch (err) {
      const why = err instanceof ProtocolError ? err.message : String(err);
      this.abort(`* BYE ${why}\r\n`, `client protocol error: ${why}`);
      return;
    }
    if (this.phase !== 'relay') return;
    // A segment that has not ended yet is held back: it may turn out to be a
    // LOGOUT, which the server must never see.
    if (this.clientCursor < chunk.length) this.heldClient.push(Buffer.from(chunk.subarray(this.clientCursor)));
    this.flushClient();
  }

  private flushClient(): void {
    if (this.forwardClient.length === 0) return;
    const data = this.forwardClient.length === 1 ? this.forwardClient[0]! : Buffer.concat(this.forwardClient);
    this.forwardClient = [];
    this.writeServer(data);
  }

  private writeServer(data: Buffer): void {
    if (!this.conn.write(data) && !this.clientPaused) {
      // Back-pressure: a slow server slows the client down instead of
      // growing a buffer here.
      this.clientPaused = true;
      this.updateClientFlow();
      this.conn.socket.once('drain', () => {
        this.clientPaused = false;
        this.updateClientFlow();
      });
    }
  }

  /** The client is read while the session relays, the server keeps up and no SELECT is being checked. */
  private updateClientFlow(): void {
    if (this.phase === 'relay' && !this.clientPaused && this.check === null) this.client.resume();
    else this.client.pause();
  }

  private onClientSegment(seg: Segment, chunk: Buffer, end: number): void {
    // After LOGOUT nothing the client sent reaches the server or changes what
    // the proxy knows of the connection, which may be back in the pool by now
    // (a pipelined SELECT used to mark the cached connection selected).
    if (this.phase !== 'relay') return;
    const piece = chunk.subarray(this.clientCursor, end);
    this.clientCursor = end;
    const bytes = this.heldClient.length > 0 ? Buffer.concat([...this.heldClient, piece]) : piece;
    this.heldClient = [];
    if (seg.first) {
      if (this.authTag !== null) {
        // A SASL response line of an AUTHENTICATE in progress, not a command.
      } else if (this.idleTag !== null && !this.idleDone && /^DONE\s*$/i.test(seg.head.toString('latin1'))) {
        // DONE ends IDLE; the server then completes the IDLE tag.
        this.idleDone = true;
      } else {
        this.currentTag = tagOf(seg.head);
        if (!this.onClientCommand(seg, bytes, end === chunk.length)) return;
      }
    } else if (this.reading !== null) {
      this.reading.push(seg.head);
      if (seg.literal === null) this.finishReading();
    }
    if (seg.literal !== null && !seg.literal.nonSync) {
      this.literalTag = this.currentTag;
      this.literalsAwaiting++;
    }
    this.forwardClient.push(bytes);
  }

  /** The last line of a command that carried literals: now the whole command is known. */
  private finishReading(): void {
    const lines = this.reading!;
    this.reading = null;
    const { understanding } = readClientCommand(lines);
    if (!understanding.understood) {
      this.proof.taint(understanding.unknown ? 'unknown_command' : 'unparsed_arguments', understanding.reason);
      return;
    }
    const use = this.newEffects(understanding.use);
    const entry = this.slot.entry;
    if (entry !== null && !keepsSelectCache(use, entry.mailbox)) this.slot.entry = null;
    this.applyUse(use, this.currentTag, understanding.use.enables);
  }

  /**
   * How the extensions now switched on came to be (enabled-origin.ts): the
   * first ENABLE on a connection with nothing on is recorded with its
   * answer; CONDSTORE alone by a command that uses it is "implicit"; any
   * other way makes the connection one that is not cached.
   */
  private noteEnables(use: CommandUse, requested: readonly string[], tag: string | null): void {
    const conn = this.conn;
    if (use.name === 'ENABLE') {
      if (conn.enabled.size === 0 && conn.enabledBy === null && this.enableRecord === null && tag !== null) {
        this.enableRecord = { tag, requested: requestedKey(requested), lines: [] };
      } else {
        conn.enabledBy = { kind: 'mixed' };
      }
    } else if (conn.enabledBy === null || conn.enabledBy.kind === 'implicit') {
      conn.enabledBy = { kind: 'implicit' };
    } else {
      conn.enabledBy = { kind: 'mixed' };
    }
  }

  /** Nothing outstanding, nothing queued, no IDLE or AUTHENTICATE in progress: a held command may be decided alone. */
  private quiet(): boolean {
    return this.outstanding.size === 0 && this.own.size === 0 && this.forwardClient.length === 0 && this.idleTag === null && this.authTag === null;
  }

  /**
   * `use` with only the extensions it switches on that are not on yet: a
   * STATUS HIGHESTMODSEQ on a connection with CONDSTORE on changes nothing.
   * QRESYNC switches CONDSTORE on too (RFC 7162 §3.2.3).
   */
  private newEffects(use: CommandUse): CommandUse {
    if (use.enables.length === 0) return use;
    const all = new Set(use.enables);
    if (all.has('QRESYNC')) all.add('CONDSTORE');
    const fresh = [...all].filter((ext) => !this.conn.enabled.has(ext));
    return fresh.length === use.enables.length && !all.has('QRESYNC') ? use : { ...use, enables: fresh };
  }

  /**
   * What an understood command (`tag`) leaves in the session; `use` as
   * newEffects gave it, `requested` what an ENABLE asked for.
   */
  private applyUse(use: CommandUse, tag: string | null, requested: readonly string[] = use.enables): void {
    if (use.enables.length > 0) this.noteEnables(use, requested, tag);
    for (const ext of use.enables) this.conn.enabled.add(ext);
    if (use.enables.length > 0) this.slot.entry = null;
    if (use.irreversible !== null) this.conn.notReusable ??= use.irreversible;
    if (use.selectionState !== null) {
      this.selectionState = use.selectionState;
      this.slot.entry = null;
    }
  }

  /**
   * A new client command starts; false when it must not be forwarded.
   * `lastInChunk`: nothing follows it in the client's data so far.
   */
  private onClientCommand(seg: Segment, bytes: Buffer, lastInChunk: boolean): boolean {
    const complete = seg.literal === null;
    // A command that goes on after a literal is read as far as its first
    // line now (what must be decided before it goes out) and whole at its end.
    const reading = readClientCommand([seg.head], !complete);
    const understanding = reading.understanding;
    const tag = reading.tag;
    if (tag === null || reading.name === '') {
      // Not a command the proxy can read (the server will answer BAD); it has
      // no tag to wait for, so nothing is tracked.
      if (!understanding.understood) this.proof.taint('unparsed_arguments', understanding.reason);
      if (this.inherited) this.unselectInherited();
      return true;
    }
    const name = understanding.understood ? understanding.use.name : reading.name;
    if (name === 'LOGOUT') {
      // What came before it is queued; it goes out with the clean-up command in one write (beginLogout).
      this.clientScanner.pause();
      this.beginLogout(tag);
      return false;
    }
    if (this.outstanding.size >= this.config.max_pending_commands) {
      this.abort('* BYE Too many commands in progress\r\n', `more than ${this.config.max_pending_commands} commands pending`);
      return false;
    }
    if (this.outstanding.has(tag) || this.own.has(tag)) this.proof.taint('untracked_tag', 'a tag already in use');
    if (!understanding.understood) {
      this.proof.taint(understanding.unknown ? 'unknown_command' : 'unparsed_arguments', understanding.reason);
    }
    if (!complete) this.reading = [seg.head];
    const use = understanding.understood ? this.newEffects(understanding.use) : null;
    if (name === 'STATUS' && this.inherited && complete && use !== null && use.mailbox !== null && this.slot.entry !== null) {
      if (!sameMailbox(this.slot.entry.mailbox, use.mailbox)) {
        // The STATUS of another mailbox is read from that mailbox, whatever is selected.
        this.sendCommand(tag, name, { ...use, independentOfSelection: true }, complete, null);
        return true;
      }
      if (lastInChunk && this.quiet() && this.slot.statusOk !== null) {
        this.startSelectCheck({ kind: 'status', tag, mailbox: use.mailbox, bytes: Buffer.from(bytes), use });
        return false;
      }
    }
    if (name === 'SELECT' && this.selectCache) {
      const mailbox = complete ? cacheableSelect(seg.head.toString('latin1')) : null;
      const entry = this.slot.entry;
      // Only when the SELECT is all the client asked for: nothing outstanding,
      // nothing after it, no IDLE or AUTHENTICATE in progress.
      if (mailbox !== null && entry !== null && sameMailbox(entry.mailbox, mailbox) && this.conn.selected && lastInChunk && this.quiet()) {
        this.startSelectCheck({ kind: 'select', tag, mailbox, bytes: Buffer.from(bytes), use });
        return false;
      }
      this.hooks.selectCommand?.(false);
      this.sendCommand(tag, name, use, complete, mailbox);
      return true;
    }
    this.sendCommand(tag, name, use, complete, null, understanding.understood ? understanding.use.enables : undefined);
    return true;
  }

  /**
   * Bookkeeping for a client command on its way to the server (its bytes are
   * queued by the caller). `use`: what the command does, as far as it is
   * known (`complete`: all of it; else its first line), null when it is not
   * understood. `cacheable`: the mailbox of a SELECT whose reply may be stored.
   */
  private sendCommand(tag: string, name: string, use: CommandUse | null, complete: boolean, cacheable: Buffer | null, requested?: readonly string[]): void {
    if (this.inherited && !this.mayRunOnInherited(complete && use !== null && use.independentOfSelection)) this.unselectInherited();
    const entry = this.slot.entry;
    if (entry !== null && !keepsSelectCache(use, entry.mailbox)) this.slot.entry = null;
    // A reply is only collected when it cannot mix with another command's.
    this.store = null;
    // (With extensions on, the reply is stored under them: the connection only
    // ever serves sessions with the same ones, and an entry never outlives a
    // change of them, applyUse.)
    if (cacheable !== null && this.outstanding.size === 0 && use !== null && use.enables.length === 0 && this.serverScanner.atBoundary) {
      this.store = { tag, mailbox: cacheable, parts: [], size: 0, tooLarge: false };
    }
    const selects = name === 'SELECT' || name === 'EXAMINE';
    this.outstanding.set(tag, { name, selects, unselects: name === 'CLOSE' || name === 'UNSELECT', literal: !complete });
    if (selects) this.conn.selected = true;
    if (complete && use !== null) this.applyUse(use, tag, requested);
    if (name === 'IDLE') {
      this.idleTag = tag;
      this.idleDone = false;
      this.idleContinued = false;
    }
    if (name === 'AUTHENTICATE') this.authTag = tag;
    if (name === 'COMPRESS') this.compressTag = tag;
  }

  /**
   * The mailbox the previous session left selected must go before this
   * session's command reaches the server. The UNSELECT goes first in the same
   * write; the server runs commands in order, so nothing of the next command
   * can be about the old mailbox.
   */
  private unselectInherited(): void {
    if (this.unselectingInherited) return;
    this.unselectingInherited = true;
    this.slot.entry = null;
    this.conn.selected = false;
    const command = this.conn.unselectSupported ? 'UNSELECT' : 'EXAMINE ""';
    const tag = nextTag();
    this.own.set(tag, (status) => {
      // UNSELECT must work; the EXAMINE of "" is meant to fail (RFC 3501
      // §6.3.1: a failed EXAMINE leaves no mailbox selected).
      if (status === 'BAD' || (status !== 'OK' && command === 'UNSELECT')) {
        if (this.phase === 'relay') this.abort('* BYE Internal error\r\n', `${command} of the inherited mailbox failed`);
        else this.finish({ reusable: false, reason: `${command} of the inherited mailbox failed` });
        return;
      }
      this.inherited = false;
      this.watch.strict = this.check !== null;
      this.maybeDone();
    });
    this.forwardClient.push(Buffer.from(`${tag} ${command}\r\n`, 'latin1'));
  }

  // --- the select cache ------------------------------------------------------

  /** A SELECT of the mailbox with a cached reply: ask the server (NOOP) whether anything changed. */
  private startSelectCheck(check: SelectCheck): void {
    this.check = check;
    this.updateClientFlow();
    // While the NOOP runs, any FETCH is news from other sessions.
    this.watch.strict = true;
    const tag = nextTag();
    this.own.set(tag, (status) => this.finishSelectCheck(status));
    this.conn.write(`${tag} NOOP\r\n`);
  }

  private finishSelectCheck(status: string): void {
    const check = this.check!;
    this.check = null;
    this.watch.strict = this.inherited;
    if (this.phase !== 'relay') {
      // The client left meanwhile: its command never reached the server.
      this.maybeDone();
      return;
    }
    // The watch has dropped the entry if the NOOP reported anything but plain
    // status lines, which went on to the client as they came.
    const entry = this.slot.entry;
    const current = status === 'OK' && entry !== null && sameMailbox(entry.mailbox, check.mailbox) && this.conn.selected;
    if (check.kind === 'status') {
      // Current: the STATUS runs on the inherited selection. Else sendCommand unselects first.
      this.sendCommand(check.tag, 'STATUS', current && check.use !== null ? { ...check.use, independentOfSelection: true } : check.use, true, null);
      const sent = this.outstanding.get(check.tag);
      if (sent && this.inherited) sent.onInherited = true;
      this.forwardClient.push(check.bytes);
      this.flushClient();
    } else if (current) {
      this.hooks.selectCommand?.(true);
      const closed = this.clientSelected && this.slot.closedLine !== null ? this.slot.closedLine : EMPTY;
      this.writeClient(Buffer.concat([closed, entry.body, Buffer.from(`${check.tag} ${entry.status}\r\n`, 'latin1')]));
      this.clientSelected = true;
      this.inherited = false;
      this.watch.strict = false;
    } else {
      this.hooks.selectCommand?.(false);
      this.slot.entry = null;
      // The client's own SELECT after all. A session that had nothing
      // selected must not see the `* OK [CLOSED]` of the inherited mailbox:
      // it is unselected first.
      this.sendCommand(check.tag, 'SELECT', check.use, true, check.mailbox);
      this.forwardClient.push(check.bytes);
      this.flushClient();
    }
    this.updateClientFlow();
    if (this.deferredClient.length > 0) {
      const data = Buffer.concat(this.deferredClient);
      this.deferredClient = [];
      this.processClient(data);
    }
  }

  /** The forwarded SELECT completed: cache its reply if it may be. */
  private finishStore(status: string, tagged: Segment): void {
    const store = this.store!;
    this.store = null;
    if (store.tooLarge || tagged.literal !== null || tagged.head.length < tagged.length) return;
    const statusText = tagged.head.toString('latin1', store.tag.length + 1);
    if (status !== 'OK') return;
    const built = buildEntry(store.mailbox, Buffer.concat(store.parts), statusText);
    if (typeof built === 'string') return;
    this.slot.entry = built.entry;
    if (built.closedLine !== null) this.slot.closedLine = built.closedLine;
  }

  /**
   * The session ends with its mailbox still selected, its UNSELECT left to
   * the next session. With the select cache: only for a current cached reply
   * (the next session may be served from it). Without: always; the next
   * session's first command goes out behind the UNSELECT, in the same write
   * (unselectInherited), so the LOGOUT costs no server round trip and the
   * clean-up no write of its own (performance, issue 7).
   */
  private keepsSelection(syncPoint = false): boolean {
    if (!this.conn.selected) return false;
    // A saved search result or search updates live as long as the selection.
    if (this.selectionState !== null) return false;
    // Without the cache a sync point (a resync) costs a round trip anyway: it is the UNSELECT then.
    return this.selectCache ? this.slot.entry !== null : !syncPoint;
  }

  /**
   * A command that may reach the server while the mailbox an earlier session
   * left selected still is: one whose reply does not depend on the selection
   * (CommandUse.independentOfSelection; untagged news about the mailbox is
   * kept from the client meanwhile). Without the select cache none: nothing
   * is gained by keeping the mailbox any longer.
   */
  private mayRunOnInherited(independentOfSelection: boolean): boolean {
    return this.selectCache && independentOfSelection;
  }

  // --- server -> client ----------------------------------------------------

  private onServerData(chunk: Buffer): void {
    this.hooks.trace?.server(chunk);
    if (this.raw) {
      this.writeClient(chunk);
      return;
    }
    this.sChunk = chunk;
    this.sPos = 0;
    this.sFwdFrom = -1;
    let used: number;
    try {
      used = this.serverScanner.push(chunk);
    } catch (err) {
      // A literal marker too large to be a length ({1234567890123456}): the
      // framing is lost, so the session cannot go on. This used to escape the
      // socket's read callback and end the whole daemon (found in review).
      const why = err instanceof ProtocolError ? err.message : String(err);
      this.sChunk = EMPTY;
      this.abort('* BYE Internal error: unreadable response from the IMAP server\r\n', `server protocol error: ${why}`);
      return;
    }
    if (this.phase === 'done') {
      // The connection went back to the pool in the middle of this chunk: the
      // rest is unsolicited and goes to its new owner (which closes it).
      this.sChunk = EMPTY;
      if (used < chunk.length) this.conn.dispatch(chunk.subarray(used));
      return;
    }
    if (this.raw) {
      // COMPRESS began in this chunk: its rest went to the client as it was.
      this.sChunk = EMPTY;
      return;
    }
    if (this.sPos < chunk.length) {
      // A line that has not ended yet.
      if (this.sStartForwarded) {
        this.routeTo(chunk.length, 'forward');
      } else if (!this.sNextFirst) {
        this.routeTo(chunk.length, this.sRoute);
      } else if ((this.phase === 'relay' || this.phase === 'logout') && (this.inherited || this.own.size > 0 || this.store !== null)) {
        // Its fate is not known before its first line is: keep it (what
        // came before it goes now).
        this.flushForward();
        this.sHeld.push(Buffer.from(chunk.subarray(this.sPos)));
        this.sPos = chunk.length;
      } else {
        this.sStartForwarded = true;
        this.routeTo(chunk.length, 'forward');
      }
    }
    this.flushForward();
    this.sChunk = EMPTY;
  }

  /** Routes the bytes of sChunk up to `to` (the current response's). */
  private routeTo(to: number, route: 'forward' | 'drop'): void {
    const from = this.sPos;
    if (to <= from) return;
    if (route === 'forward') {
      if (this.sFwdFrom < 0) this.sFwdFrom = from;
    } else {
      this.flushForward();
    }
    this.sPos = to;
  }

  /** Writes the forwarded bytes of sChunk routed so far. */
  private flushForward(): void {
    if (this.sFwdFrom >= 0 && this.sPos > this.sFwdFrom) this.emitClient(this.sChunk.subarray(this.sFwdFrom, this.sPos));
    this.sFwdFrom = -1;
  }

  /** Server bytes for the client (while it is there), and for a SELECT reply being collected. */
  private emitClient(data: Buffer): void {
    const store = this.store;
    if (store !== null && !store.tooLarge) {
      store.size += data.length;
      if (store.size > SELECT_CACHE_MAX_BYTES) {
        store.tooLarge = true;
        store.parts = [];
      } else {
        store.parts.push(Buffer.from(data));
      }
    }
    if (this.phase === 'relay' || this.phase === 'logout') this.writeClient(data);
  }

  /** A response begins with the segment ending at `end`: route it (and what was held of it). */
  private beginResponse(route: 'forward' | 'drop', end: number): void {
    if (this.sStartForwarded) {
      // Its start has gone out already; the rest must follow.
      route = 'forward';
      this.sStartForwarded = false;
    }
    this.sRoute = route;
    if (this.sHeld.length > 0) {
      const held = Buffer.concat(this.sHeld);
      this.sHeld = [];
      // Held bytes come from earlier chunks: nothing of this chunk precedes them.
      if (route === 'forward') this.emitClient(held);
    }
    this.routeTo(end, route);
  }

  private writeClient(data: Buffer): void {
    if (this.client.destroyed) return;
    // `data` may be a view of the server connection's reusable read buffer (ClientWriter).
    const flowing = this.toClient.write(data);
    if (!flowing && !this.serverPaused) {
      // A client that stops reading a large FETCH stops the server side too.
      this.serverPaused = true;
      this.conn.socket.pause();
      this.client.once('drain', () => {
        this.serverPaused = false;
        this.conn.socket.resume();
      });
    }
  }

  private onServerSegment(seg: Segment, _chunk: Buffer, end: number): void {
    const first = this.sNextFirst;
    this.sNextFirst = seg.literal === null;
    // Without the select cache (and so without an inherited mailbox) nothing is watched.
    const watching = this.selectCache || this.inherited;
    if (!first) {
      if (watching) this.watch.continued(seg);
      this.routeTo(end, this.sRoute);
      if (watching && seg.literal === null) this.watch.end();
      return;
    }
    const b0 = seg.head[0];
    if (b0 === 0x2a /* * */) {
      if (!watching) {
        this.checkUntagged(seg.head);
        this.beginResponse('forward', end);
        return;
      }
      this.checkUntagged(seg.head);
      const kind = this.watch.begin(seg);
      // News about a mailbox the client does not know is selected stays here.
      this.beginResponse(this.inherited && (kind === 'mailbox' || kind === 'fetch') ? 'drop' : 'forward', end);
      if (seg.literal === null) this.watch.end();
      return;
    }
    if (b0 === 0x2b /* + */) {
      if (this.literalsAwaiting > 0) {
        this.literalsAwaiting--;
        if (this.literalsAwaiting === 0) this.literalTag = null;
      } else if (this.idleTag !== null && !this.idleContinued) {
        this.idleContinued = true;
      } else if (this.authTag === null) {
        this.proof.taint('unexpected_continuation', 'a continuation request no command waited for');
      }
      this.beginResponse('forward', end);
      return;
    }
    const sp = seg.head.indexOf(0x20);
    if (sp <= 0) {
      this.proof.taint('unexpected_response', 'a server line that is neither tagged nor untagged');
      this.beginResponse('forward', end);
      return;
    }
    const tag = seg.head.toString('latin1', 0, sp);
    const status = /^(OK|NO|BAD)\b/i.exec(seg.head.toString('latin1', sp + 1, sp + 5))?.[1]?.toUpperCase() ?? '';
    const ownDone = this.own.get(tag);
    if (ownDone) {
      this.own.delete(tag);
      this.beginResponse('drop', end);
      ownDone(status);
      return;
    }
    const cmd = this.outstanding.get(tag);
    if (!cmd || !completesTag(seg.head, Buffer.from(tag, 'latin1')) || status === '') {
      this.proof.taint('untracked_tag', 'a tagged reply to no command the proxy tracked');
      this.beginResponse('forward', end);
      return;
    }
    if (cmd.literal && status !== 'OK') {
      // The server may have refused the command before reading its literal,
      // and then read the literal's bytes as commands of their own.
      this.proof.taint('refused_literal', `${status} to ${cmd.name} with a literal`);
    }
    if (this.store !== null && this.store.tag === tag) {
      // Everything before this line is the reply's untagged part.
      this.flushForward();
      this.finishStore(status, seg);
    }
    if (cmd.name === 'STATUS' && status === 'OK' && seg.head.length === seg.length && seg.literal === null) {
      const text = seg.head.toString('latin1', sp + 1);
      if (!/^OK \[CLIENTBUG\]/i.test(text)) {
        this.slot.statusOk = text;
      } else if (cmd.onInherited === true && this.slot.statusOk !== null) {
        // The client did not select this mailbox: what a fresh login hears (SelectCacheSlot.statusOk).
        this.beginResponse('drop', end);
        this.writeClient(Buffer.from(`${tag} ${this.slot.statusOk}\r\n`, 'latin1'));
        this.completed(tag, cmd, status, end, seg);
        return;
      }
    }
    this.beginResponse('forward', end);
    this.completed(tag, cmd, status, end, seg);
  }

  /** The bookkeeping of a client command's tagged reply. */
  private completed(tag: string, cmd: Outstanding, status: string, end: number, tagged: Segment): void {
    const record = this.enableRecord;
    if (record !== null && record.tag === tag) {
      this.enableRecord = null;
      // the answer is kept whole (a tagged line longer than the head is not: the connection is then not cached)
      const whole = tagged.head.length === tagged.length && tagged.literal === null;
      this.conn.enabledBy = status === 'OK' && whole
        ? { kind: 'enable', requested: record.requested, untagged: Buffer.concat(record.lines.flatMap((l) => [l, CRLF])), ok: tagged.head.toString('latin1', tag.length + 1) }
        : { kind: 'mixed' };
    }
    this.outstanding.delete(tag);
    if (this.literalTag === tag) {
      // The server refused the literal: the client will not send its bytes.
      this.literalTag = null;
      this.literalsAwaiting = 0;
      this.clientScanner.cancelLiteral();
    }
    if (tag === this.idleTag) this.idleTag = null;
    if (tag === this.authTag) this.authTag = null;
    if (cmd.unselects && status === 'OK') {
      // ...unless a SELECT/EXAMINE sent after it is still on its way: pipelined
      // SELECT, UNSELECT, SELECT left the last mailbox selected on a connection
      // then cached as unselected, and the next session started inside it
      // (found by test/soak-short.test.ts; B4).
      if (![...this.outstanding.values()].some((o) => o.selects)) this.conn.selected = false;
      this.clientSelected = false;
      this.slot.entry = null;
      // A saved result and search updates end with the selection.
      this.selectionState = null;
    }
    if (cmd.selects) {
      if (status === 'OK') this.clientSelected = true;
      // A failed SELECT/EXAMINE leaves no mailbox selected (RFC 3501 §6.3.1),
      // unless another one is still on its way.
      if (status === 'NO') {
        this.clientSelected = false;
        if (![...this.outstanding.values()].some((o) => o.selects)) this.conn.selected = false;
      }
    }
    if (tag === this.compressTag) {
      this.compressTag = null;
      if (status === 'OK') {
        // Everything after this line is deflated: stop reading, never cache.
        this.conn.notReusable ??= 'COMPRESS is active';
        this.slot.entry = null;
        this.flushForward();
        this.raw = true;
        const rest = this.sChunk.subarray(end);
        if (rest.length > 0) this.writeClient(rest);
        this.sPos = this.sChunk.length;
        this.serverScanner.pause();
        return;
      }
    }
    if (this.phase === 'logout' && this.outstanding.size === 0) this.finishLogoutForClient();
  }

  /** The server's second word on what this session switched on (reuse-proof.ts). */
  private checkUntagged(head: Buffer): void {
    const sign = untaggedSign(head);
    if (sign === null) return;
    const condstore = this.conn.enabled.has('CONDSTORE') || this.conn.enabled.has('QRESYNC');
    const waiting = (what: (o: Outstanding) => boolean): boolean => [...this.outstanding.values()].some(what);
    if (sign === 'enabled' && !waiting((o) => o.name === 'ENABLE')) {
      this.proof.taint('unexpected_response', 'ENABLED without an ENABLE');
    } else if (sign === 'enabled' && this.enableRecord !== null) {
      // Kept whole (a line longer than the head is not: the connection is then not cached).
      if (head.length < SERVER_HEAD && head.indexOf(0x7b /* { */) < 0) this.enableRecord.lines.push(Buffer.from(head));
      else this.conn.enabledBy = { kind: 'mixed' };
    } else if (sign === 'highestmodseq' && !condstore && !waiting((o) => o.selects)) {
      this.proof.taint('unexpected_response', 'HIGHESTMODSEQ outside a SELECT');
    } else if (sign === 'fetch-modseq' && !condstore) {
      this.proof.taint('unexpected_response', 'MODSEQ in a FETCH without CONDSTORE');
    } else if (sign === 'search-update' && this.selectionState === null) {
      this.proof.taint('unexpected_response', 'a search update nobody asked for');
    }
  }

  // --- ending ----------------------------------------------------------------

  /** Client LOGOUT: answered by the proxy; the connection is cleaned for the pool. */
  private beginLogout(tag: string): void {
    this.phase = 'logout';
    // Only the clean-up's short replies are read from now on (the read buffer shrinks for the pool).
    this.conn.state = 'cleanup';
    this.logoutTag = tag;
    this.client.pause();
    this.client.setTimeout(0);
    // LOGOUT typed into an IDLE without DONE: end the IDLE first, or the
    // clean-up command would be read as part of it.
    if (this.idleTag !== null && !this.idleDone) {
      this.forwardClient.push(Buffer.from('DONE\r\n', 'latin1'));
      this.idleDone = true;
    }
    this.sendCleanup();
    // The client's commands before the LOGOUT (pipelined), the DONE and the
    // clean-up command: one write (performance, issue 7).
    this.flushClient();
    if (this.outstanding.size === 0) this.finishLogoutForClient();
  }

  /** Every client command is answered: the client gets BYE and OK and is closed. */
  private finishLogoutForClient(): void {
    this.flushForward();
    this.phase = 'drain';
    this.detachClient();
    // The client's BYE and OK wait for the clean-up when there is one (the
    // replies to commands pipelined before the LOGOUT; the UNSELECT of a
    // mailbox the select cache does not keep): the connection is back in the
    // pool before the client can log in again for its next page view.
    this.maybeDone();
  }

  private readonly onClientClose = (): void => {
    if (this.phase !== 'relay') return;
    this.phase = 'drain';
    this.detachClient();
    // The client left without LOGOUT: bring the server connection back to a
    // known state before anyone else may use it (SPEC §11 B4, S3).
    const blocker = this.conn.cannotReset;
    if (blocker !== null) return this.finish({ reusable: false, reason: blocker });
    if (this.clientScanner.literalRemaining > 0 || this.clientScanner.midLine || this.heldClient.length > 0) {
      return this.finish({ reusable: false, reason: 'client left in the middle of a command' });
    }
    if (this.idleTag !== null && !this.idleDone) this.conn.write('DONE\r\n');
    if (this.authTag !== null) this.conn.write('*\r\n');
    this.resyncing = true;
    this.sendCleanup(true);
    this.maybeDone();
  };

  private readonly onIdleTimeout = (): void => {
    if (this.phase !== 'relay') return;
    this.hooks.log.info(`client idle for ${this.config.idle_timeout} s: closing the session`);
    this.endClient(this.raw ? '' : '* BYE Autologout; idle for too long\r\n'); // no plain text under COMPRESS
    this.onClientClose();
  };

  /**
   * UNSELECT (or the EXAMINE of an impossible name) when a mailbox may be
   * selected and is not kept for the next session (keepsSelection), else NOOP
   * when a sync point is needed.
   */
  private sendCleanup(needSyncPoint = false): void {
    if (this.conn.cannotReset !== null) return;
    let command: string | null = null;
    let done: (status: string) => void;
    if (this.conn.selected && !this.keepsSelection(needSyncPoint)) {
      command = this.conn.unselectSupported ? 'UNSELECT' : 'EXAMINE ""';
      done = (status) => {
        // UNSELECT must succeed; the EXAMINE of "" is meant to fail (it leaves
        // no mailbox selected either way).
        this.conn.selected = false;
        this.slot.entry = null;
        if (status === 'BAD') this.finish({ reusable: false, reason: 'clean-up command rejected' });
        else this.maybeDone();
      };
    } else if (needSyncPoint) {
      // NOOP only has to come back (what it reports goes through the watch).
      command = 'NOOP';
      done = (status) => {
        if (status === 'BAD') this.finish({ reusable: false, reason: 'clean-up command rejected' });
        else this.maybeDone();
      };
    } else {
      return;
    }
    const tag = nextTag();
    this.own.set(tag, done);
    // After anything queued for the server (LOGOUT pipelined behind other commands), in the same write.
    this.forwardClient.push(Buffer.from(`${tag} ${command}\r\n`, 'latin1'));
    this.flushClient();
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = setTimeout(() => this.finish({ reusable: false, reason: `no answer to ${command} within ${this.config.resync_timeout} s` }), this.config.resync_timeout * 1000);
  }

  private maybeDone(): void {
    if (this.phase !== 'drain') return;
    const blocker = this.conn.cannotReset;
    if (blocker !== null) return this.finish({ reusable: false, reason: blocker });
    if (this.outstanding.size === 0 && this.own.size === 0) {
      // A mailbox kept for the select cache whose reply turned out to be out
      // of date (the last replies reported changes): unselect it after all.
      if (this.conn.selected && !this.keepsSelection()) return this.sendCleanup();
      this.finish({ reusable: true });
    } else if (!this.drainTimer) {
      this.drainTimer = setTimeout(() => this.finish({ reusable: false, reason: `commands still pending after ${this.config.resync_timeout} s` }), this.config.resync_timeout * 1000);
    }
  }

  private serverGone(): void {
    if (this.phase === 'done') return;
    const wasRelaying = this.phase === 'relay' || this.phase === 'logout';
    this.hooks.log.err(`Raw_Proxy(): IMAP server unexpectedly closed the connection on sd ${this.conn.id}`);
    // Under COMPRESS the client's stream is DEFLATE data: a plain-text BYE
    // would corrupt it (RFC 4978), so the client is only closed. So it is
    // when the server died in the middle of a response line or literal: the
    // BYE would land inside it (found by test/faults.test.ts, a server that
    // drops mid-FETCH).
    const clean = !this.raw && this.serverScanner.atBoundary;
    if (wasRelaying) this.endClient(clean ? '* BYE IMAP server closed the connection\r\n' : '');
    this.detachClient();
    this.finish({ reusable: false, reason: 'server closed the connection' });
  }

  /** Ends the session at once: the server connection is in an unknown state. */
  private abort(bye: string, reason: string): void {
    this.phase = 'drain';
    this.detachClient();
    this.endClient(bye);
    this.finish({ reusable: false, reason });
  }

  private detachClient(): void {
    this.client.off('data', this.onClientData);
    this.client.setTimeout(0);
    this.deferredClient = [];
    // Nothing goes to the client any more: if its back-pressure paused the
    // server side, read on. Otherwise the clean-up never sees the replies it
    // waits for, and a client that stopped reading a big FETCH and then
    // vanished always ended in a resync timeout instead of a clean connection.
    this.conn.socket.resume();
  }

  private finish(outcome: RelayOutcome): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.serverScanner.pause();
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.conn.offClose(this.onServerGone);
    this.conn.setHandler(null);
    this.client.off('close', this.onClientClose);
    this.client.off('error', this.onClientClose);
    this.conn.socket.resume();
    // A connection that is not cached takes its select cache with it; one
    // that is keeps it only with the mailbox still selected.
    if (!outcome.reusable || !this.conn.selected) this.slot.entry = null;
    if (this.resyncing) this.hooks.resync?.(outcome.reusable);
    this.hooks.done(outcome);
    if (this.logoutTag !== null) this.endClient(`* BYE LOGOUT received\r\n${this.logoutTag} OK Completed\r\n`);
  }

  /**
   * Last words to the client, then closed within 5 s even if it never closes
   * its side: a client that ignored the BYE (or a dead peer after
   * idle_timeout) kept its descriptor, and its place under max_clients, for
   * as long as it liked (found by test/limits.test.ts).
   */
  private endClient(text: string): void {
    if (this.client.destroyed) return;
    this.client.end(text);
    setTimeout(() => this.client.destroy(), 5000).unref();
  }
}

function tagOf(head: Buffer): string | null {
  const sp = head.indexOf(0x20);
  return sp > 0 ? head.toString('latin1', 0, sp) : null;
}

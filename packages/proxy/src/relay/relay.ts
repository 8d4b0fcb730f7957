// The authenticated phase (SPEC §4.11, improved). Bytes go both ways as they
// came, but both directions run through the scanner so the relay always knows
// each client command's tag and name and which tags the server has completed.
// That knowledge is what makes a server connection safe to cache: it is only
// released once no command is outstanding, IDLE is over and no mailbox is
// selected (SPEC §11 B4, S3: the next session never sees a byte of this one).

import type { Socket } from 'node:net';
import { completesTag, ImapScanner, ProtocolError, type ProxyConfig, type Segment } from '@imapproxy/shared';
import type { BackendConnection } from '../backend/backend-connection.js';
import { nextTag } from '../backend/tags.js';
import { commandEffects, type CommandEffects } from './command-effects.js';

type RelayConfig = Pick<ProxyConfig, 'max_line_length' | 'max_pending_commands' | 'resync_timeout' | 'idle_timeout'>;

/** How the relay ended: the connection is clean and may be cached, or not. */
export type RelayOutcome = { reusable: true } | { reusable: false; reason: string };

export interface RelayHooks {
  /** Called once, when the server connection's fate is known. */
  done(outcome: RelayOutcome): void;
  log: { info(m: string): void; notice(m: string): void; err(m: string): void };
  /** Observers of both directions (protocol trace). */
  trace?: { client(data: Buffer): void; server(data: Buffer): void };
}

interface Outstanding {
  name: string;
  effects: CommandEffects;
}

/** Server lines longer than this are still relayed; only their head is read. */
const SERVER_LINE_LIMIT = Number.MAX_SAFE_INTEGER;
const SERVER_HEAD = 64;

export class Relay {
  private readonly clientScanner: ImapScanner;
  private readonly serverScanner: ImapScanner;
  /** Client commands sent to the server and not completed yet, by tag. */
  private readonly outstanding = new Map<string, Outstanding>();
  /** Commands the proxy itself sent (clean-up), by tag. */
  private readonly own = new Set<string>();
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
  /** Tag of the command whose synchronising literal awaits the server's `+`. */
  private literalTag: string | null = null;
  private compressTag: string | null = null;
  /** COMPRESS is active: bytes are passed through without being read. */
  private raw = false;
  private phase: 'relay' | 'logout' | 'drain' | 'done' = 'relay';
  private logoutTag: string | null = null;
  private serverCursor = 0;
  private serverForwarded = 0;
  private drainTimer: NodeJS.Timeout | null = null;
  private clientPaused = false;
  private serverPaused = false;
  private readonly onServerGone: (err?: Error) => void;

  constructor(
    private readonly client: Socket,
    private readonly conn: BackendConnection,
    private readonly config: RelayConfig,
    private readonly hooks: RelayHooks,
  ) {
    this.clientScanner = new ImapScanner(
      {
        segment: (seg, chunk, end) => this.onClientSegment(seg, chunk, end),
        literal: (chunk, start, end) => {
          this.forwardClient.push(chunk.subarray(start, end));
          this.clientCursor = end;
        },
      },
      { maxLineLength: config.max_line_length, headLimit: Math.min(config.max_line_length, 8192) },
    );
    this.serverScanner = new ImapScanner(
      { segment: (seg, chunk, end) => this.onServerSegment(seg, chunk, end) },
      { maxLineLength: SERVER_LINE_LIMIT, headLimit: SERVER_HEAD },
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
    client.resume();
  }

  // --- client -> server ----------------------------------------------------

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.phase !== 'relay') return;
    this.hooks.trace?.client(chunk);
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
  };

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
      this.client.pause();
      this.conn.socket.once('drain', () => {
        this.clientPaused = false;
        if (this.phase === 'relay') this.client.resume();
      });
    }
  }

  private onClientSegment(seg: Segment, chunk: Buffer, end: number): void {
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
        if (!this.onClientCommand(seg)) return;
      }
    }
    if (seg.literal !== null && !seg.literal.nonSync) this.literalTag = this.currentTag;
    this.forwardClient.push(bytes);
  }

  /** A new client command starts; false when it must not be forwarded. */
  private onClientCommand(seg: Segment): boolean {
    const head = seg.head.toString('latin1');
    const m = /^(\S+) ([A-Za-z]+)(?: ([A-Za-z]+))?/.exec(head);
    if (!m) {
      // Not a command the proxy can read (the server will answer BAD); it has
      // no tag to wait for, so nothing is tracked.
      return true;
    }
    const tag = m[1]!;
    let name = m[2]!.toUpperCase();
    if (name === 'UID' && m[3]) name = `UID ${m[3].toUpperCase()}`;
    if (name === 'LOGOUT') {
      this.flushClient();
      this.beginLogout(tag);
      return false;
    }
    if (this.outstanding.size >= this.config.max_pending_commands) {
      this.abort('* BYE Too many commands in progress\r\n', `more than ${this.config.max_pending_commands} commands pending`);
      return false;
    }
    const effects = commandEffects(name, head);
    this.outstanding.set(tag, { name, effects });
    if (effects.selects) this.conn.selected = true;
    for (const ext of effects.enables) this.conn.enabled.add(ext);
    if (effects.notReusable) this.conn.notReusable ??= effects.notReusable;
    if (name === 'IDLE') {
      this.idleTag = tag;
      this.idleDone = false;
    }
    if (name === 'AUTHENTICATE') this.authTag = tag;
    if (name === 'COMPRESS') this.compressTag = tag;
    return true;
  }

  // --- server -> client ----------------------------------------------------

  private onServerData(chunk: Buffer): void {
    this.hooks.trace?.server(chunk);
    if (this.raw) {
      this.writeClient(chunk);
      return;
    }
    this.serverCursor = 0;
    this.serverForwarded = 0;
    const used = this.serverScanner.push(chunk);
    if (this.phase === 'done') {
      // The connection went back to the pool in the middle of this chunk: the
      // rest is unsolicited and goes to its new owner (which closes it).
      if (used < chunk.length) this.conn.dispatch(chunk.subarray(used));
      return;
    }
    if (this.phase === 'relay' || this.phase === 'logout') {
      if (this.serverForwarded < chunk.length) {
        this.writeClient(this.serverForwarded === 0 ? chunk : chunk.subarray(this.serverForwarded));
      }
    }
  }

  private writeClient(data: Buffer): void {
    if (this.client.destroyed) return;
    if (!this.client.write(data) && !this.serverPaused) {
      // A client that stops reading a large FETCH stops the server side too.
      this.serverPaused = true;
      this.conn.socket.pause();
      this.client.once('drain', () => {
        this.serverPaused = false;
        this.conn.socket.resume();
      });
    }
  }

  private onServerSegment(seg: Segment, chunk: Buffer, end: number): void {
    this.serverCursor = end;
    if (!seg.first) return;
    const first = seg.head[0];
    if (first === 0x2a /* * */) return;
    if (first === 0x2b /* + */) {
      this.literalTag = null;
      return;
    }
    const sp = seg.head.indexOf(0x20);
    if (sp <= 0) return;
    const tag = seg.head.toString('latin1', 0, sp);
    const status = /^(OK|NO|BAD)\b/i.exec(seg.head.toString('latin1', sp + 1, sp + 5))?.[1]?.toUpperCase() ?? '';
    if (this.own.delete(tag)) {
      this.onOwnCompleted(status);
      return;
    }
    const cmd = this.outstanding.get(tag);
    if (!cmd || !completesTag(seg.head, Buffer.from(tag, 'latin1'))) return;
    this.outstanding.delete(tag);
    if (this.literalTag === tag) {
      // The server refused the literal: the client will not send its bytes.
      this.literalTag = null;
      this.clientScanner.cancelLiteral();
    }
    if (tag === this.idleTag) this.idleTag = null;
    if (tag === this.authTag) this.authTag = null;
    if (cmd.effects.unselects && status === 'OK') this.conn.selected = false;
    // A failed SELECT/EXAMINE leaves no mailbox selected (RFC 3501 §6.3.1),
    // unless another one is still on its way.
    if (cmd.effects.selects && status === 'NO' && ![...this.outstanding.values()].some((o) => o.effects.selects)) {
      this.conn.selected = false;
    }
    if (tag === this.compressTag) {
      this.compressTag = null;
      if (status === 'OK') {
        // Everything after this line is deflated: stop reading, never cache.
        this.conn.notReusable ??= 'COMPRESS is active';
        this.writeClient(chunk.subarray(this.serverForwarded, end));
        this.serverForwarded = chunk.length;
        this.raw = true;
        const rest = chunk.subarray(end);
        if (rest.length > 0) this.writeClient(rest);
        this.serverScanner.pause();
        return;
      }
    }
    if (this.phase === 'logout' && this.outstanding.size === 0) this.finishLogoutForClient(chunk, end);
  }

  // --- ending ----------------------------------------------------------------

  /** Client LOGOUT: answered by the proxy; the connection is cleaned for the pool. */
  private beginLogout(tag: string): void {
    this.phase = 'logout';
    this.logoutTag = tag;
    this.client.pause();
    this.client.setTimeout(0);
    // LOGOUT typed into an IDLE without DONE: end the IDLE first, or the
    // clean-up command would be read as part of it.
    if (this.idleTag !== null && !this.idleDone) {
      this.conn.write('DONE\r\n');
      this.idleDone = true;
    }
    this.sendCleanup();
    if (this.outstanding.size === 0) this.finishLogoutForClient(null, 0);
  }

  /** Every client command is answered: the client gets BYE and OK and is closed. */
  private finishLogoutForClient(chunk: Buffer | null, end: number): void {
    if (chunk) {
      this.writeClient(chunk.subarray(this.serverForwarded, end));
      this.serverForwarded = chunk.length;
    }
    this.phase = 'drain';
    this.detachClient();
    // The client's BYE and OK wait for the clean-up (usually one UNSELECT
    // round trip), as in the original: the connection is back in the pool
    // before the client can log in again for its next page view.
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
    this.sendCleanup(true);
    this.maybeDone();
  };

  private readonly onIdleTimeout = (): void => {
    if (this.phase !== 'relay') return;
    this.hooks.log.info(`client idle for ${this.config.idle_timeout} s: closing the session`);
    this.client.end(this.raw ? '' : '* BYE Autologout; idle for too long\r\n'); // no plain text under COMPRESS
    this.onClientClose();
  };

  /** UNSELECT (or the EXAMINE of an impossible name) when a mailbox may be selected, else NOOP when a sync point is needed. */
  private sendCleanup(needSyncPoint = false): void {
    if (this.conn.cannotReset !== null) return;
    let command: string | null = null;
    if (this.conn.selected) command = this.conn.unselectSupported ? 'UNSELECT' : 'EXAMINE ""';
    else if (needSyncPoint) command = 'NOOP';
    if (command === null) return;
    const tag = nextTag();
    this.own.add(tag);
    this.conn.write(`${tag} ${command}\r\n`);
    this.drainTimer = setTimeout(() => this.finish({ reusable: false, reason: `no answer to ${command} within ${this.config.resync_timeout} s` }), this.config.resync_timeout * 1000);
  }

  private onOwnCompleted(status: string): void {
    // UNSELECT must succeed; the EXAMINE of "" is meant to fail (it leaves no
    // mailbox selected either way); NOOP only has to come back.
    this.conn.selected = false;
    if (status === 'BAD') {
      this.finish({ reusable: false, reason: 'clean-up command rejected' });
      return;
    }
    this.maybeDone();
  }

  private maybeDone(): void {
    if (this.phase !== 'drain') return;
    const blocker = this.conn.cannotReset;
    if (blocker !== null) return this.finish({ reusable: false, reason: blocker });
    if (this.outstanding.size === 0 && this.own.size === 0) this.finish({ reusable: true });
    else if (!this.drainTimer) {
      this.drainTimer = setTimeout(() => this.finish({ reusable: false, reason: `commands still pending after ${this.config.resync_timeout} s` }), this.config.resync_timeout * 1000);
    }
  }

  private serverGone(): void {
    if (this.phase === 'done') return;
    const wasRelaying = this.phase === 'relay' || this.phase === 'logout';
    this.hooks.log.err(`Raw_Proxy(): IMAP server unexpectedly closed the connection on sd ${this.conn.id}`);
    // Under COMPRESS the client's stream is DEFLATE data: a plain-text BYE
    // would corrupt it (RFC 4978), so the client is only closed.
    if (wasRelaying && !this.client.destroyed) this.client.end(this.raw ? '' : '* BYE IMAP server closed the connection\r\n');
    this.detachClient();
    this.finish({ reusable: false, reason: 'server closed the connection' });
  }

  /** Ends the session at once: the server connection is in an unknown state. */
  private abort(bye: string, reason: string): void {
    this.phase = 'drain';
    this.detachClient();
    if (!this.client.destroyed) this.client.end(bye);
    this.finish({ reusable: false, reason });
  }

  private detachClient(): void {
    this.client.off('data', this.onClientData);
    this.client.setTimeout(0);
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
    this.hooks.done(outcome);
    if (this.logoutTag !== null && !this.client.destroyed) {
      this.client.end(`* BYE LOGOUT received\r\n${this.logoutTag} OK Completed\r\n`);
    }
  }
}

function tagOf(head: Buffer): string | null {
  const sp = head.indexOf(0x20);
  return sp > 0 ? head.toString('latin1', 0, sp) : null;
}

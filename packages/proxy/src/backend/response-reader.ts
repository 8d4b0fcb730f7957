// Reads whole server response lines (literals included) while the proxy
// itself talks to the server: greeting, STARTTLS, ID, LOGIN, and the clean-up
// before caching. Every wait has a timeout (SPEC §11 B10: the original's
// reads during login could block forever).

import { ImapScanner, TimeoutError, ImapProxyError } from '@imapproxy/shared';

export interface ResponseLine {
  /** The line as latin1 text, literal bytes included, line ending removed. */
  text: string;
}

export class ResponseReader {
  private readonly scanner: ImapScanner;
  private readonly lines: ResponseLine[] = [];
  private parts: Buffer[] = [];
  /** Raw bytes received since the last complete response. */
  private raw: Buffer[] = [];
  private rawQueue: Buffer[] = [];
  private waiter: { resolve: (l: ResponseLine) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(maxLineLength: number) {
    this.scanner = new ImapScanner(
      {
        segment: (seg, chunk, end) => {
          this.parts.push(seg.head.length === seg.length ? seg.head : Buffer.from(seg.head));
          if (seg.literal !== null) return;
          const text = Buffer.concat(this.parts).toString('latin1');
          this.parts = [];
          this.raw.push(chunk.subarray(this.rawStart, end));
          this.rawStart = end;
          this.rawQueue.push(Buffer.concat(this.raw));
          this.raw = [];
          this.deliver({ text });
        },
        literal: (chunk, start, end) => {
          this.parts.push(Buffer.from(chunk.subarray(start, end)));
        },
      },
      { maxLineLength, headLimit: maxLineLength },
    );
  }

  private rawStart = 0;

  push(chunk: Buffer): void {
    this.rawStart = 0;
    try {
      this.scanner.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (this.rawStart < chunk.length) this.raw.push(chunk.subarray(this.rawStart));
  }

  /** The connection failed or closed: pending and later reads reject with `err`. */
  fail(err: Error): void {
    this.failure ??= err;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(err);
    }
  }

  private deliver(line: ResponseLine): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      this.rawQueue.shift();
      w.resolve(line);
    } else {
      this.lines.push(line);
    }
  }

  /** Next response line, or a TimeoutError after `timeoutMs`. */
  next(timeoutMs: number, what: string): Promise<ResponseLine> {
    const queued = this.lines.shift();
    if (queued) {
      this.rawQueue.shift();
      return Promise.resolve(queued);
    }
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new TimeoutError(`no answer from the server within ${timeoutMs / 1000} s while waiting for ${what}`));
      }, timeoutMs);
      this.waiter = {
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Reads lines until the one tagged `tag`; returns it and the untagged lines before it. */
  async untilTagged(tag: string, timeoutMs: number, what: string, onUntagged?: (line: string) => void): Promise<{ status: string; text: string; line: string }> {
    const prefix = `${tag} `;
    for (;;) {
      const { text } = await this.next(timeoutMs, what);
      if (text.startsWith(prefix)) {
        const m = /^(\S+) (\S+) ?(.*)$/.exec(text)!;
        return { status: (m[2] ?? '').toUpperCase(), text: m[3] ?? '', line: text };
      }
      if (text.startsWith('+')) throw new ImapProxyError('IMAPPROXY_ERR_PROTOCOL', `unexpected continuation from the server while waiting for ${what}`);
      onUntagged?.(text);
    }
  }

  /** Bytes received but not read as lines yet: they belong to whoever uses the connection next. */
  takeUnread(): Buffer {
    const out = Buffer.concat([...this.rawQueue, ...this.raw]);
    this.rawQueue = [];
    this.raw = [];
    this.lines.length = 0;
    return out;
  }
}

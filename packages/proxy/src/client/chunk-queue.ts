// The client's bytes not parsed yet, before login. They used to be one Buffer
// re-concatenated with every chunk that arrived, which made a client
// streaming a long line cost time quadratic in its length (issue 16, finding
// 4). Here chunks are kept in a list and concatenated once, when a whole line
// is taken or the rest is handed to the relay; a search for a line ending
// never looks at the same chunk twice.

const LF = 0x0a;
const EMPTY = Buffer.alloc(0);

export class ChunkQueue {
  private chunks: Buffer[] = [];
  /** Index of the first chunk still held (Array.shift would be linear per call). */
  private head = 0;
  private bytes = 0;
  /** Chunks from `head` already searched by takeLine() and known to hold no LF. */
  private searched = 0;
  /** Their total length. */
  private searchedBytes = 0;

  /** Bytes held. */
  get length(): number {
    return this.bytes;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** The first chunk, for a parser that may use only part of it (then consume()). */
  peek(): Buffer | undefined {
    return this.chunks[this.head];
  }

  /** Drops `n` bytes (at most the first chunk's length) from the front; nothing when empty (cleared meanwhile). */
  consume(n: number): void {
    const first = this.chunks[this.head];
    if (n <= 0 || first === undefined) return;
    const whole = n >= first.length;
    const used = whole ? first.length : n;
    if (this.searched > 0) {
      this.searchedBytes -= used;
      if (whole) this.searched--;
    }
    if (whole) {
      this.head++;
      if (this.head === this.chunks.length) {
        this.chunks = [];
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
        this.chunks = this.chunks.slice(this.head);
        this.head = 0;
      }
    } else {
      this.chunks[this.head] = first.subarray(n);
    }
    this.bytes -= used;
  }

  /** The bytes up to and including the first LF, or null when no line is complete yet. */
  takeLine(): Buffer | null {
    const nl = this.indexOfLf();
    return nl < 0 ? null : this.take(nl + 1);
  }

  /** Offset of the first LF, or -1; each chunk is searched once over all calls. */
  indexOfLf(): number {
    for (let i = this.head + this.searched; i < this.chunks.length; i++) {
      const nl = this.chunks[i]!.indexOf(LF);
      if (nl >= 0) return this.searchedBytes + nl;
      this.searchedBytes += this.chunks[i]!.length;
      this.searched++;
    }
    return -1;
  }

  /** The first `n` bytes (at most all), concatenated, without taking them. */
  peekBytes(n: number): Buffer {
    const parts: Buffer[] = [];
    let left = Math.min(n, this.bytes);
    for (let i = this.head; left > 0; i++) {
      const c = this.chunks[i]!;
      const use = Math.min(left, c.length);
      parts.push(use === c.length ? c : c.subarray(0, use));
      left -= use;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Drops the first `n` bytes (at most all). */
  skip(n: number): void {
    let left = Math.min(n, this.bytes);
    while (left > 0) {
      const use = Math.min(left, this.chunks[this.head]!.length);
      this.consume(use);
      left -= use;
    }
  }

  /** Everything held, concatenated once. */
  takeAll(): Buffer {
    return this.take(this.bytes);
  }

  /** Forgets everything; returns how many bytes that was. */
  clear(): number {
    const n = this.bytes;
    this.chunks = [];
    this.head = 0;
    this.bytes = 0;
    this.searched = 0;
    this.searchedBytes = 0;
    return n;
  }

  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const first = this.chunks[this.head]!;
      const use = Math.min(left, first.length);
      parts.push(use === first.length ? first : first.subarray(0, use));
      this.consume(use);
      left -= use;
    }
    this.searched = 0;
    this.searchedBytes = 0;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }
}

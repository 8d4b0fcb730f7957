// Writes to the client of bytes that may be views of the server connection's
// reusable read buffer (backend-connection.ts, ReadBuffer).
//
// A write Node cannot finish at once keeps its buffer until it is done. The
// first such write takes the whole read buffer: the next read goes into
// another one (readBufferLent), and this write's callback gives it back as
// the spare once the bytes are out. Writes queued behind a pending one get
// copies, so a client that reads slowly holds at most one read buffer plus the
// copies back-pressure allows, not one buffer per small reply (found in
// review: 46 MiB for 373 queued NOOP replies).

import type { Socket } from 'node:net';
import type { BackendConnection } from '../backend/backend-connection.js';

export class ClientWriter {
  /** Writes made while none was pending, and how many of them are done. */
  private direct = 0;
  private directDone = 0;
  /** The direct write holding the read buffer, and how to give it back. */
  private lentAt = 0;
  private release: (() => void) | null = null;
  // Write callbacks come in write order: the n-th direct write's callback is
  // the n-th call of this one.
  private readonly onDirectWritten = (): void => {
    if (++this.directDone === this.lentAt && this.release !== null) {
      const release = this.release;
      this.release = null;
      release();
    }
  };

  constructor(
    private readonly client: Socket,
    private readonly conn: Pick<BackendConnection, 'readBufferLent'>,
  ) {}

  /** Writes `data`; false when the client's buffer is full (Writable.write's answer). */
  write(data: Buffer): boolean {
    if (this.client.writableLength > 0) return this.client.write(Buffer.from(data));
    const flowing = this.client.write(data, this.onDirectWritten);
    this.direct++;
    if (this.client.writableLength > 0) {
      this.lentAt = this.direct;
      this.release = this.conn.readBufferLent();
    }
    return flowing;
  }
}

// The reusable read buffer of server connections (backend-connection.ts,
// connectWithReadBuffer): bytes forwarded to a client that reads slowly (its
// writes stay pending, so the buffer is lent) arrive intact, and so do the
// bytes the response reader keeps across reads.

import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClientWriter } from '../relay/client-writer.js';
import { BackendConnection, connectWithReadBuffer } from './backend-connection.js';

async function listen(onConnection: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(onConnection);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

const port = (server: net.Server): number => (server.address() as net.AddressInfo).port;

interface Forwarded {
  lent: number;
  released: number;
  /** Distinct memory the reads went into. */
  buffers: number;
}

/**
 * 12 MiB from a "server" through a connectWithReadBuffer socket to a "client"
 * that pauses after `pauseShare` of its reads, the chunks written as relay.ts
 * writes them (ClientWriter).
 * Asserts every byte arrived intact.
 */
async function forward(t: ExecutionContext, clientHighWaterMark: number | undefined, pauseShare: number): Promise<Forwarded> {
  const payload = randomBytes(12 * 1024 * 1024);
  // The "IMAP server": the payload in writes of random sizes.
  const source = await listen((s) => {
    let pos = 0;
    const pump = (): void => {
      while (pos < payload.length) {
        const n = Math.min(payload.length - pos, 1 + Math.floor(Math.random() * 200_000));
        const more = s.write(payload.subarray(pos, pos + n));
        pos += n;
        if (!more) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  // The "client": reads in bursts with pauses, so the proxy's writes to it often stay pending.
  const received = createHash('sha256');
  let receivedBytes = 0;
  let sinkEnded: () => void = () => {};
  const sinkDone = new Promise<void>((resolve) => {
    sinkEnded = resolve;
  });
  const sink = await listen((s) => {
    s.on('data', (d: Buffer) => {
      received.update(d);
      receivedBytes += d.length;
      if (Math.random() < pauseShare) {
        s.pause();
        setTimeout(() => s.resume(), 5);
      }
    });
    s.on('end', () => sinkEnded());
  });
  t.teardown(() => {
    sink.close();
    source.close();
  });
  const client = net.connect({ host: '127.0.0.1', port: port(sink), writableHighWaterMark: clientHighWaterMark } as net.NetConnectOpts);
  await once(client, 'connect');

  const socket = connectWithReadBuffer({ host: '127.0.0.1', port: port(source) });
  await once(socket, 'connect');
  const conn = new BackendConnection(socket, 1000);
  // Lends and returns counted around the real ones.
  let lent = 0;
  let released = 0;
  const lendReal = conn.readBufferLent.bind(conn);
  const lender = {
    readBufferLent: () => {
      lent++;
      const giveBack = lendReal();
      return () => {
        released++;
        giveBack();
      };
    },
  };
  // As relay.ts writes to the client: an early return of the buffer would
  // show as corrupted bytes here.
  const writer = new ClientWriter(client, lender);
  const buffers = new Set<ArrayBufferLike>();
  conn.setHandler((chunk) => {
    buffers.add(chunk.buffer);
    const flowing = writer.write(chunk);
    if (!flowing) {
      socket.pause();
      client.once('drain', () => socket.resume());
    }
  });
  socket.once('end', () => client.end());
  await sinkDone;
  t.is(receivedBytes, payload.length);
  t.is(received.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  return { lent, released, buffers: buffers.size };
}

test('a high-water mark far above the read size (reads go on while a write is pending): writes behind it get copies, every byte intact', async (t) => {
  const r = await forward(t, 8 * 1024 * 1024, 0.05);
  t.true(r.lent > 0, 'some writes were still pending: the lending path was taken');
});

test('the client socket as the relay has it (pauses the server at each pending write): lent buffers come back and take reads again, every byte intact', async (t) => {
  // A client slower than the server: once the socket buffers are full most writes stay pending.
  const r = await forward(t, undefined, 1);
  t.log(r);
  t.true(r.lent > 1, 'writes were still pending, again and again');
  t.true(r.released > 1, `lent buffers came back (${r.released} of ${r.lent})`);
  t.true(r.buffers < r.lent, `read into again: ${r.buffers} buffers for ${r.lent} lends`);
});

test('the response reader keeps bytes across reads (a line cut in two, unread bytes): copied, not overwritten by the next read', async (t) => {
  const lines = Array.from({ length: 200 }, (_, i) => `* ${i} NOOP ${'x'.repeat(i * 37)}`);
  const text = `${lines.join('\r\n')}\r\na1 OK done\r\n`;
  const after = ['* 1 EXI', 'STS\r\n* 2 RE', 'CENT\r\n* 3 FET'];
  let sendAfter: () => Promise<void> = async () => {};
  const source = await listen(async (s) => {
    sendAfter = async () => {
      for (const piece of after) {
        s.write(piece);
        await sleep(20);
      }
    };
    // Cut inside lines, one piece per read.
    for (let pos = 0; pos < text.length; pos += 1000) {
      s.write(text.slice(pos, pos + 1000));
      await sleep(2);
    }
  });
  t.teardown(() => source.close());
  const socket = connectWithReadBuffer({ host: '127.0.0.1', port: port(source) });
  await once(socket, 'connect');
  const conn = new BackendConnection(socket, 100_000);
  const seen: string[] = [];
  const r = await conn.reader.untilTagged('a1', 5000, 'the test reply', (line) => seen.push(line));
  t.is(r.status, 'OK');
  t.deepEqual(seen, lines);
  // Bytes that arrive after the reply, in several reads, wait for the next owner (relay.start's pendingServer).
  await sendAfter();
  await sleep(50);
  t.is(conn.reader.takeUnread().toString('latin1'), after.join(''));
  conn.destroy();
});

// The reusable read buffer of server connections (backend-connection.ts,
// connectWithReadBuffer): bytes forwarded to a client that reads slowly (its
// writes stay pending, so the buffer is lent) arrive intact, and so do the
// bytes the response reader keeps across reads.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendConnection, connectWithReadBuffer } from './backend-connection.js';

async function listen(onConnection: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(onConnection);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

const port = (server: net.Server): number => (server.address() as net.AddressInfo).port;

test('forwarded to a slow reader as the relay does (pending writes lend the buffer): every byte intact', async (t) => {
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
      if (Math.random() < 0.05) {
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
  // A high-water mark far above the buffer size: write() says go on while a write is pending, so reads go on too.
  const client = net.connect({ host: '127.0.0.1', port: port(sink), writableHighWaterMark: 8 * 1024 * 1024 } as net.NetConnectOpts);
  await once(client, 'connect');

  const socket = connectWithReadBuffer({ host: '127.0.0.1', port: port(source) });
  await once(socket, 'connect');
  const conn = new BackendConnection(socket, 1000);
  let lent = 0;
  conn.setHandler((chunk) => {
    // relay.ts writeClient
    const flowing = client.write(chunk);
    if (client.writableLength > 0) {
      lent++;
      conn.readBufferLent();
    }
    if (!flowing) {
      socket.pause();
      client.once('drain', () => socket.resume());
    }
  });
  socket.once('end', () => client.end());
  await sinkDone;
  t.is(receivedBytes, payload.length);
  t.is(received.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  t.true(lent > 0, 'some writes were still pending: the lending path was taken');
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

import test from 'ava';
import { ChunkQueue } from './chunk-queue.js';

test('takeLine finds a line split over chunks, once; the rest stays', (t) => {
  const q = new ChunkQueue();
  q.push(Buffer.from('ab'));
  t.is(q.takeLine(), null);
  q.push(Buffer.from('c'));
  t.is(q.takeLine(), null);
  q.push(Buffer.from('d\r\nef\ngh'));
  t.is(q.takeLine()!.toString(), 'abcd\r\n');
  t.is(q.length, 5);
  t.is(q.takeLine()!.toString(), 'ef\n');
  t.is(q.takeLine(), null);
  t.is(q.takeAll().toString(), 'gh');
  t.is(q.length, 0);
});

test('consume and peek walk the chunks; takeLine after a partial consume', (t) => {
  const q = new ChunkQueue();
  q.push(Buffer.from('xyz'));
  t.is(q.takeLine(), null);
  q.push(Buffer.from('12\n'));
  q.consume(1);
  t.is(q.peek()!.toString(), 'yz');
  t.is(q.takeLine()!.toString(), 'yz12\n');
  q.push(Buffer.from('abc'));
  q.consume(3);
  t.is(q.length, 0);
  t.is(q.peek(), undefined);
  q.push(Buffer.from('q'));
  t.is(q.clear(), 1);
  // cleared while a parser was reading its first chunk: consuming it is a no-op
  q.consume(1);
  t.is(q.length, 0);
});

test('a line trickled a byte at a time costs linear time', (t) => {
  const q = new ChunkQueue();
  const one = Buffer.from('x');
  const started = performance.now();
  for (let i = 0; i < 200_000; i++) {
    q.push(one);
    if (q.takeLine() !== null) t.fail();
  }
  q.push(Buffer.from('\n'));
  t.is(q.takeLine()!.length, 200_001);
  // quadratic would be 2e10 byte comparisons; linear is well under a second even on a busy machine
  t.true(performance.now() - started < 5000);
});

test('indexOfLf, peekBytes and skip leave or drop bytes across chunks', (t) => {
  const q = new ChunkQueue();
  q.push(Buffer.from('a1 NO'));
  t.is(q.indexOfLf(), -1);
  q.push(Buffer.from('OP\r'));
  t.is(q.indexOfLf(), -1);
  q.push(Buffer.from('\nrest'));
  t.is(q.indexOfLf(), 8);
  t.is(q.peekBytes(8).toString(), 'a1 NOOP\r');
  t.is(q.length, 13, 'peekBytes takes nothing');
  q.skip(9);
  t.is(q.takeAll().toString(), 'rest');
});

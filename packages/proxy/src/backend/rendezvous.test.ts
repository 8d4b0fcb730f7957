// Rendezvous hashing is a pure function of the server list and the user
// name: these tests check what the routing promises (SPEC-free, issue 10):
// an even spread, and that removing a server moves its users only.

import test from 'ava';
import { rendezvousOrder } from './rendezvous.js';

const SERVERS = ['imap1.example.org:143', 'imap2.example.org:143', 'imap3.example.org:143', '10.0.0.7:1143'];
const USERS = Array.from({ length: 4000 }, (_v, i) => `user${i}@example.org`);

const home = (servers: readonly string[], user: string): string => servers[rendezvousOrder(servers, user)[0]!]!;

test('every server appears once in every order', (t) => {
  for (const user of USERS.slice(0, 200)) {
    t.deepEqual([...rendezvousOrder(SERVERS, user)].sort(), [0, 1, 2, 3]);
  }
});

test('the same user gets the same order every time, whatever the spelling of the key (Buffer or latin1)', (t) => {
  for (const user of ['alice', 'bob', 'm\xfcller', '']) {
    const order = rendezvousOrder(SERVERS, user);
    t.deepEqual(rendezvousOrder(SERVERS, user), order);
    t.deepEqual(rendezvousOrder(SERVERS, Buffer.from(user, 'latin1')), order);
  }
});

test('users are spread roughly evenly', (t) => {
  const counts = new Map<string, number>();
  for (const user of USERS) counts.set(home(SERVERS, user), (counts.get(home(SERVERS, user)) ?? 0) + 1);
  const even = USERS.length / SERVERS.length;
  for (const s of SERVERS) {
    const n = counts.get(s) ?? 0;
    // 1000 expected each; a binomial spread is about ±30 (one sigma): ±15 % is far outside of chance.
    t.true(Math.abs(n - even) < even * 0.15, `${s}: ${n} of ${USERS.length}`);
  }
});

test('removing a server moves its users only, spread over the others', (t) => {
  const gone = SERVERS[1]!;
  const left = SERVERS.filter((s) => s !== gone);
  const movedTo = new Map<string, number>();
  for (const user of USERS) {
    const before = home(SERVERS, user);
    const after = home(left, user);
    if (before !== gone) {
      t.is(after, before, `${user} moved from ${before} although ${gone} was removed`);
      continue;
    }
    // A user of the removed server goes to its second choice in the old order.
    t.is(after, SERVERS[rendezvousOrder(SERVERS, user)[1]!]!);
    movedTo.set(after, (movedTo.get(after) ?? 0) + 1);
  }
  t.deepEqual([...movedTo.keys()].sort(), [...left].sort());
});

test('adding a server takes users from every other server, and only for itself', (t) => {
  const added = [...SERVERS, 'imap5.example.org:143'];
  let moved = 0;
  for (const user of USERS) {
    const after = home(added, user);
    if (after !== home(SERVERS, user)) {
      t.is(after, 'imap5.example.org:143');
      moved++;
    }
  }
  t.true(moved > USERS.length / 5 * 0.8 && moved < USERS.length / 5 * 1.2, `${moved} moved`);
});

test('one server: the order is that server, and the order of a list does not depend on its order', (t) => {
  t.deepEqual(rendezvousOrder(['localhost:143'], 'alice'), [0]);
  const reversed = [...SERVERS].reverse();
  for (const user of USERS.slice(0, 100)) t.is(home(reversed, user), home(SERVERS, user));
});

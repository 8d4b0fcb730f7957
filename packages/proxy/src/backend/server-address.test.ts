// DNS answers for server_hostname: one lookup at a time, a known answer never
// waits for a new one, and a resolver that does not answer costs a login at
// most its own deadline (a hung getaddrinfo holds one of libuv's 4 threads).

import test from 'ava';
import { RETRY_MS, ServerAddresses, TTL_MS, type ServerAddress } from './server-address.js';

interface PendingLookup {
  answer: (addresses: string[]) => void;
  fail: (message: string) => void;
}

/** A resolver whose answers the test gives by hand, and a clock it moves. */
function fixture(roundRobin = false) {
  const lookups: PendingLookup[] = [];
  const clock = { now: 1_000_000 };
  const resolve = () =>
    new Promise<ServerAddress[]>((ok, ko) =>
      lookups.push({
        answer: (addresses) => ok(addresses.map((address) => ({ address, family: 4 }))),
        fail: (message) => ko(new Error(message)),
      }),
    );
  const addresses = new ServerAddresses('imap.example.org', 0, roundRobin, resolve, () => clock.now);
  return { lookups, clock, addresses };
}

const names = (list: readonly ServerAddress[]) => list.map((a) => a.address);
const tick = () => new Promise((r) => setImmediate(r));

test('the first logins wait for one lookup between them', async (t) => {
  const { lookups, addresses } = fixture();
  const first = addresses.forNewConnection(5000);
  const second = addresses.forNewConnection(5000);
  await tick();
  t.is(lookups.length, 1);
  lookups[0]!.answer(['192.0.2.1', '192.0.2.2']);
  t.deepEqual(names(await first), ['192.0.2.1', '192.0.2.2']);
  t.deepEqual(names(await second), ['192.0.2.1', '192.0.2.2']);
  t.deepEqual(names(addresses.known), ['192.0.2.1', '192.0.2.2']);
});

test('no answer yet and a resolver that hangs: the login fails at its deadline, naming the host; no second lookup meanwhile', async (t) => {
  const { lookups, addresses } = fixture();
  const err = await t.throwsAsync(addresses.forNewConnection(30));
  t.is(err?.message, 'DNS lookup of imap.example.org timed out after 30 ms');
  await t.throwsAsync(addresses.forNewConnection(30), { message: /timed out/ });
  t.is(lookups.length, 1, 'the hung lookup is shared, not repeated');
  // It answers late: the next login uses that answer at once.
  lookups[0]!.answer(['192.0.2.9']);
  await tick();
  t.deepEqual(names(await addresses.forNewConnection(30)), ['192.0.2.9']);
});

test('a failed first lookup fails the login with its reason, and the next login asks again', async (t) => {
  const { lookups, addresses } = fixture();
  const first = addresses.forNewConnection(5000);
  await tick();
  lookups[0]!.fail('getaddrinfo ENOTFOUND imap.example.org');
  await t.throwsAsync(first, { message: 'getaddrinfo ENOTFOUND imap.example.org' });
  t.is(addresses.lastLookupError, 'getaddrinfo ENOTFOUND imap.example.org');
  const second = addresses.forNewConnection(5000);
  await tick();
  t.is(lookups.length, 2);
  lookups[1]!.answer([]);
  await t.throwsAsync(second, { message: 'DNS lookup of imap.example.org: no address' });
});

test('an answer older than the TTL serves at once while a new one is asked for; a failure keeps it and waits before asking again', async (t) => {
  const { lookups, clock, addresses } = fixture();
  const first = addresses.forNewConnection(5000);
  await tick();
  lookups[0]!.answer(['192.0.2.1']);
  await first;

  clock.now += TTL_MS - 1;
  t.deepEqual(names(await addresses.forNewConnection(5000)), ['192.0.2.1']);
  t.is(lookups.length, 1, 'fresh: no lookup');

  clock.now += 2;
  t.deepEqual(names(await addresses.forNewConnection(5000)), ['192.0.2.1'], 'stale: the old answer, without waiting');
  t.deepEqual(names(await addresses.forNewConnection(5000)), ['192.0.2.1']);
  t.is(lookups.length, 2, 'one refresh for both logins');
  lookups[1]!.fail('resolver down');
  await tick();
  t.is(addresses.lastLookupError, 'resolver down');

  t.deepEqual(names(await addresses.forNewConnection(5000)), ['192.0.2.1'], 'the last good answer still serves');
  t.is(lookups.length, 2, 'no retry before RETRY_MS');
  clock.now += RETRY_MS + 1;
  await addresses.forNewConnection(5000);
  t.is(lookups.length, 3);
  lookups[2]!.answer(['192.0.2.5']);
  await tick();
  t.is(addresses.lastLookupError, null);
  t.deepEqual(names(await addresses.forNewConnection(5000)), ['192.0.2.5'], 'the new answer from then on');
});

test('dns_rr: each new connection starts at the next address', async (t) => {
  const { lookups, addresses } = fixture(true);
  const first = addresses.forNewConnection(5000);
  await tick();
  lookups[0]!.answer(['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  t.deepEqual(names(await first), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  t.deepEqual(names(await addresses.forNewConnection(5000)), ['192.0.2.2', '192.0.2.3', '192.0.2.1']);
  t.deepEqual(names(await addresses.forNewConnection(5000)), ['192.0.2.3', '192.0.2.1', '192.0.2.2']);
});

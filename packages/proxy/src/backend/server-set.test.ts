// The choice of servers for a login: the user's rendezvous order, servers up
// first, every server still tried when all are down, and one server exactly
// as before (always that one, nothing logged about its state).

import test from 'ava';
import { ServerSet } from './server-set.js';
import type { Logger } from '../log/logger.js';

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (m: string) => void lines.push(`${level}: ${m}`);
  const log = { err: at('err'), warning: at('warning'), notice: at('notice'), info: at('info'), debug: at('debug') } as unknown as Logger;
  return { log, lines };
}

const config = (server_hostname: string) => ({ server_hostname, server_port: 143, ipversion_only: 0 as const, dns_rr: false });

test('entries keep their own port or get server_port; names are host:port', (t) => {
  const set = ServerSet.fromConfig(config('imap1.example.org, imap2.example.org:1143 [::1]:993 ::1'), recordingLog().log);
  t.deepEqual(set.servers.map((s) => [s.name, s.host, s.port]), [
    ['imap1.example.org:143', 'imap1.example.org', 143],
    ['imap2.example.org:1143', 'imap2.example.org', 1143],
    ['[::1]:993', '::1', 993],
    ['[::1]:143', '::1', 143],
  ]);
});

test('a user goes to its server while it is up, to its next one while it is down, and back', (t) => {
  const { log, lines } = recordingLog();
  const set = ServerSet.fromConfig(config('10.0.0.1 10.0.0.2 10.0.0.3'), log);
  const downs: string[] = [];
  const ups: string[] = [];
  set.onDown((s) => downs.push(s.name));
  set.onUp((s) => ups.push(s.name));
  const order = set.order('alice');
  t.is(set.route('alice'), order[0]!);

  set.connectFailed(order[0]!, 'connect ECONNREFUSED');
  set.setDown(order[0]!, 'health check: connect ECONNREFUSED'); // already down: no second line, no second event
  t.deepEqual(set.order('alice'), [order[1]!, order[2]!, order[0]!]);
  t.is(set.route('alice'), order[1]!);
  t.is(order[0]!.connectFailures, 1);
  t.is(order[0]!.lastError, 'health check: connect ECONNREFUSED');

  set.setUp(order[0]!);
  set.setUp(order[0]!);
  t.deepEqual(set.order('alice'), order);
  t.deepEqual(downs, [order[0]!.name]);
  t.deepEqual(ups, [order[0]!.name]);
  t.deepEqual(lines, [`warning: server ${order[0]!.name} is down: connect ECONNREFUSED`, `notice: server ${order[0]!.name} is up again`]);
});

test('every server down: all are still tried, in the user\'s order; no route to keep to', (t) => {
  const set = ServerSet.fromConfig(config('10.0.0.1 10.0.0.2 10.0.0.3'), recordingLog().log);
  const order = set.order('bob');
  for (const s of set.servers) set.setDown(s, 'x');
  t.deepEqual(set.order('bob'), order);
  t.is(set.route('bob'), null);
});

test('without a user (the greeting): servers up first, in list order', (t) => {
  const set = ServerSet.fromConfig(config('10.0.0.1 10.0.0.2 10.0.0.3'), recordingLog().log);
  set.setDown(set.servers[0]!, 'x');
  t.deepEqual(set.order().map((s) => s.name), ['10.0.0.2:143', '10.0.0.3:143', '10.0.0.1:143']);
});

test('one server: always that one, no route, state kept but not logged', (t) => {
  const { log, lines } = recordingLog();
  const set = ServerSet.fromConfig(config('localhost'), log);
  t.true(set.single);
  set.connectFailed(set.servers[0]!, 'connect ECONNREFUSED');
  t.deepEqual(set.order('alice'), [set.servers[0]!]);
  t.is(set.route('alice'), null);
  t.is(set.servers[0]!.health, 'down');
  t.deepEqual(lines, []);
});

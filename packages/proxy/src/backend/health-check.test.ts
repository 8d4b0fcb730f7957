// Health checks against a probe the test controls: a check's outcome counts
// only if nothing newer was learnt about the server while it ran.

import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { HealthChecker } from './health-check.js';
import { ServerSet } from './server-set.js';
import type { Logger } from '../log/logger.js';

const quiet = { err() {}, warning() {}, notice() {}, info() {}, debug() {} } as unknown as Logger;

/** A probe whose checks end when the test says so. */
function controlledProbe() {
  const pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  const probe = () => new Promise<void>((resolve, reject) => void pending.push({ resolve, reject }));
  return { probe, pending };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await sleep(5);
}

test('a check that began before a login saw the server fail does not mark it up again', async (t) => {
  const set = ServerSet.fromConfig({ server_hostname: '10.0.0.1 10.0.0.2', server_port: 143, ipversion_only: 0, dns_rr: false }, quiet);
  const { probe, pending } = controlledProbe();
  const checker = new HealthChecker(set, probe, { server_health_interval: 60, server_health_timeout: 5 });
  checker.start();
  await until(() => pending.length === 2); // both servers are checked at start
  const [first] = set.servers;
  await sleep(2); // the login's failure comes strictly after the check began
  set.connectFailed(first!, 'connect ECONNREFUSED');
  pending[0]!.resolve(); // the old check answers "up"
  await sleep(10);
  t.false(first!.up, 'still down: the login saw it later than the check');
  pending[1]!.resolve();
  checker.stop();
});

test('a check that began before a login reached the server again does not mark it down', async (t) => {
  const set = ServerSet.fromConfig({ server_hostname: '10.0.0.1 10.0.0.2', server_port: 143, ipversion_only: 0, dns_rr: false }, quiet);
  const [first] = set.servers;
  set.connectFailed(first!, 'connect ECONNREFUSED');
  const { probe, pending } = controlledProbe();
  const checker = new HealthChecker(set, probe, { server_health_interval: 60, server_health_timeout: 5 });
  checker.start();
  await until(() => pending.length === 2);
  await sleep(2);
  set.setUp(first!); // a login connected fine meanwhile
  pending[0]!.reject(new Error('timed out'));
  await sleep(10);
  t.true(first!.up);
  pending[1]!.resolve();
  checker.stop();
});

// The dashboard's `r` key against a live daemon: the counters file really goes back to zero.
import test from 'ava';
import { PassThrough } from 'node:stream';
import { readStatsFile } from '@imapproxy/shared';
import { runTui } from '@imapproxy/pimpstat/tui';
import { loadSettings } from '@imapproxy/pimpstat/settings';
import { startDovecot } from './helpers/dovecot.js';
import { startProxy } from './helpers/proxy.js';
import { statsWhen } from './helpers/reliability.js';
import { RawClient } from './helpers/transcript.js';
import { waitUntil } from './helpers/wait.js';

test('r in the dashboard resets the daemon counters through the control socket; q quits', async (t) => {
  const dovecot = await startDovecot();
  const proxy = await startProxy({ serverPort: dovecot.port });
  t.teardown(async () => {
    await proxy.stop();
    await dovecot.stop();
  });
  const c = await RawClient.connect(proxy.port);
  t.deepEqual(await c.command('a1 LOGIN user1 pass1'), ['a1 OK User logged in']);
  await c.command('a2 LOGOUT');
  // the writer flushes once a second
  await statsWhen(proxy.statFile, (x) => x.totalClientLogins === 1);

  const output = Object.assign(new PassThrough(), { columns: 80, rows: 24, isTTY: true });
  let drawn = 0;
  output.on('data', (b: Buffer) => (drawn += b.length));
  const input = new PassThrough();
  const settings = loadSettings(proxy.confFile);
  const done = runTui({ settings, initial: readStatsFile(proxy.statFile), ascii: true, input, output, terminal: 'xterm-256color' });
  // the dashboard is up (it has drawn its first screen) before the key
  await waitUntil('the dashboard\'s first screen', () => drawn > 0);
  input.write('r');
  const after = await statsWhen(proxy.statFile, (x) => x.totalClientLogins === 0).catch(() => readStatsFile(proxy.statFile));
  t.is(after.totalClientLogins, 0);
  t.is(after.totalClientConnectionsAccepted, 0);
  input.write('q');
  t.is(await done, 0);
});

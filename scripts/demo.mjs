// npm run demo: a throwaway Dovecot with a few users, imapproxy-ts in front of it,
// two logins through it to show the reuse, then what to try by hand. Ctrl-C
// stops both and removes their temporary directories. Needs root (Dovecot's
// mail user and the packages of scripts/install-system-deps.sh) and a build;
// the servers are the test suite's (test/helpers/dovecot.ts, proxy.ts).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (process.getuid?.() !== 0) {
  process.stderr.write('npm run demo: needs root (it starts Dovecot with a mail user of its own); try: sudo npm run demo\n');
  process.exit(77);
}
if (!existsSync('/usr/sbin/dovecot')) {
  process.stderr.write('npm run demo: Dovecot is missing; install it with: bash scripts/install-system-deps.sh\n');
  process.exit(69);
}
const { startDovecot } = await import(path.join(repo, 'test/dist/helpers/dovecot.js'));
const { startProxy } = await import(path.join(repo, 'test/dist/helpers/proxy.js'));
const { RawClient } = await import(path.join(repo, 'test/dist/helpers/transcript.js'));

const dovecot = await startDovecot({ users: 3 });
const proxy = await startProxy({ serverPort: dovecot.port, extraConf: 'enable_select_cache yes' });
const stop = async () => {
  await proxy.stop();
  await dovecot.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

const say = (s) => process.stdout.write(`${s}\n`);
say(`Dovecot   127.0.0.1:${dovecot.port}  users user1..user3, passwords pass1..pass3`);
say(`proxy     127.0.0.1:${proxy.port}  config ${proxy.confFile}`);
say('');
for (const round of [1, 2]) {
  const c = await RawClient.connect(proxy.port);
  say(`login ${round}:`);
  for (const line of await c.command('a1 LOGIN user1 pass1')) say(`  S: ${line}`);
  await c.command('a2 LOGOUT');
  await c.close();
}
say('  (the second login got "[XPROXYREUSE]": the proxy handed it the server connection of the first)');
say('');
say('Try, in another terminal:');
say(`  python3 -c "import imaplib; c=imaplib.IMAP4('127.0.0.1', ${proxy.port}); print(c.login('user2','pass2')); print(c.select('INBOX')); c.logout()"`);
say('    (run it twice: the second login is answered from the cached connection)');
say(`  node ${path.relative(process.cwd(), path.join(repo, 'bin/pimpstat'))} -f ${proxy.confFile}              the live dashboard (q quits)`);
say(`  node ${path.relative(process.cwd(), path.join(repo, 'bin/imapproxyctl'))} -f ${proxy.confFile} dump     the server connections, cached and active`);
say(`  node ${path.relative(process.cwd(), path.join(repo, 'bin/imapproxyctl'))} -f ${proxy.confFile} trace user2   then log in as user2 and read ${path.join(proxy.dir, 'protocol.log')}`);
say('Ctrl-C stops the demo.');
setInterval(() => {}, 1 << 30);

// The soak in long form (bench/soak.sh): Dovecot and our daemon started here,
// then test/soak/soak.ts for --seconds with --clients clients of --users users.
// Prints the figures; exits 1 when a reply reached the wrong session, a read
// hung, or the daemon died.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDovecot } from '../helpers/dovecot.js';
import { isAlive } from '../helpers/process-tree.js';
import { startProxy } from '../helpers/proxy.js';
import { rssSampler } from '../helpers/reliability.js';
import { runSoak, soakSummary } from './soak.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<number> {
  const users = arg('users', 50);
  const clients = arg('clients', 200);
  const seconds = arg('seconds', 300);
  const seed = arg('seed', Date.now() % 100_000);
  const dovecot = await startDovecot({ users });
  const selectCache = arg('select-cache', 0) === 1;
  const proxy = await startProxy({ serverPort: dovecot.port, extraConf: `enable_select_cache ${selectCache ? 'yes' : 'no'}` });
  try {
    const rss = rssSampler(proxy.pid, 500);
    const r = await runSoak({
      port: proxy.port,
      users: Array.from({ length: users }, (_, i) => ({ user: `user${i + 1}`, pass: `pass${i + 1}` })),
      clients,
      durationMs: seconds * 1000,
      seed,
      dropRate: arg('drop-rate', 0.05),
      pipelineMax: arg('pipeline', 4),
    });
    const peak = rss.stop();
    const alive = isAlive(proxy.pid);
    process.stdout.write(`soak: seed ${seed}, ${clients} clients, ${users} users, select cache ${selectCache ? 'on' : 'off'}\n${soakSummary(r)}\npeak RSS ${(peak / 1024).toFixed(0)} MiB; daemon ${alive ? 'alive' : 'DEAD'}\n`);
    for (const s of r.foreignSamples) process.stdout.write(`FOREIGN: ${s}\n`);
    for (const e of r.errors) process.stdout.write(`error: ${e}\n`);
    return r.foreign === 0 && r.hangs === 0 && alive ? 0 : 1;
  } finally {
    await proxy.stop();
    await dovecot.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  });
}

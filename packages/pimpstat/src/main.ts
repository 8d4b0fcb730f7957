// The pimpstat program (bin/pimpstat imports this file). The work is in ./cli.ts.
import { hideBin } from 'yargs/helpers';
import { main } from './cli.js';

main(hideBin(process.argv)).then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    // main() reports its own failures; this is a bug, still without a stack trace.
    process.stderr.write(`pimpstat: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 70;
  },
);

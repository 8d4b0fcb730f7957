// Loaded by ava in every worker process (package.json "ava.require").
//
// ava lets a worker process end on its own after the file's last hook, and waits for it.
// A handle left open (a socket a daemon never closed, a child's pipe, a timer) keeps the
// worker alive and the whole run with it: on Node.js 24 on a loaded machine some runs
// never ended that way. ava's documented remedy is a completion handler that exits; it
// runs only once every test and hook of the file has finished and reported, so no result
// is lost. What was still open is named on stderr (IMAPPROXY_TEST_HANDLES=1), so a leak
// can be found rather than hidden.
import test, { registerCompletionHandler } from 'ava';

export default function exitWhenDone(): void {
  registerCompletionHandler(() => {
    if (process.env.IMAPPROXY_TEST_HANDLES === '1') {
      // The worker's own stdout, stderr and IPC channel are three pipes that are always open.
      let own = 3;
      const open = process.getActiveResourcesInfo().filter((r) => !(r === 'PipeWrap' && own-- > 0));
      if (open.length > 0) process.stderr.write(`${test.meta.file}: open after the last hook: ${open.join(', ')}\n`);
    }
    process.exit();
  });
}

// What our daemon did with a session's server connection, read from its log:
// which connection ("sd [N]") a login got, and, once the session ended, whether
// the connection went back to the pool or was closed.
import { eventually, reEscape } from './proxy-log.js';
import type { Proxy } from './proxy.js';

/** The server sd of the last LOGIN of `user` in the proxy's log. */
export function lastSd(proxy: Proxy, user: string): number {
  const re = new RegExp(`LOGIN: '${reEscape(user)}' \\(.*\\) on (?:new|existing) sd \\[(\\d+)\\]`);
  for (const line of proxy.log().reverse()) {
    const m = re.exec(line);
    if (m) return Number(m[1]);
  }
  throw new Error(`no LOGIN of ${user} in the proxy log:\n${proxy.log().join('\n')}`);
}

export interface Verdict {
  outcome: 'cached' | 'closed';
  /** The log line that said so. */
  line: string;
}

/** Waits for the verdict on server sd `sd` in the log lines after index `from`. */
export function verdict(proxy: Proxy, user: string, sd: number, from: number, timeoutMs = 20_000): Promise<Verdict> {
  return eventually(
    `the verdict on server sd [${sd}]`,
    () => {
      for (const line of proxy.log().slice(from)) {
        if (line.includes(`LOGOUT: '${user}' from server sd [${sd}]`)) return { outcome: 'cached' as const, line };
        if (line.includes(`Invalidating server sd [${sd}]`) || line.includes(`Expiring server sd [${sd}]`)) return { outcome: 'closed' as const, line };
      }
      return undefined;
    },
    timeoutMs,
    () => proxy.log().join('\n'),
  );
}

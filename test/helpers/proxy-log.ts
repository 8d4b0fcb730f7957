// Reading our daemon's log in pool tests: which server connection ("sd [N]") a
// login got, whether it was new or reused, and polling for lines that are
// written asynchronously (stderr reaches the test process a little after the
// client saw the reply that followed the log line).
import type { Proxy } from './proxy.js';
import { waitFor } from './wait.js';

export interface LoginEvent {
  user: string;
  /** Client address "ip:port". */
  client: string;
  kind: 'new' | 'existing';
  sd: number;
}

// imapproxyd[pid]: info: LOGIN: 'user1' (127.0.0.1:38356) on new sd [2]
const LOGIN_LINE = /LOGIN: '(.*)' \(([^)]*)\) on (new|existing) sd \[(\d+)\]$/;

/** Successful logins in the log, in order, optionally of one user. */
export function loginEvents(proxy: Proxy, user?: string): LoginEvent[] {
  const out: LoginEvent[] = [];
  for (const line of proxy.log()) {
    const m = LOGIN_LINE.exec(line);
    if (!m || (user !== undefined && m[1] !== user)) continue;
    out.push({ user: m[1]!, client: m[2]!, kind: m[3] as 'new' | 'existing', sd: Number(m[4]) });
  }
  return out;
}

/** Log lines matching `re`, in order. */
export function logLines(proxy: Proxy, re: RegExp): string[] {
  return proxy.log().filter((l) => re.test(l));
}

/**
 * Polls `probe` until it returns something other than undefined; rejects after
 * timeoutMs, stretched by the machine's load (see wait.ts).
 */
export function eventually<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 5000,
  detail?: () => string,
): Promise<T> {
  return waitFor(what, probe, { timeoutMs, detail });
}

/** Waits until the log holds at least `count` login events of `user` and returns them all. */
export function waitForLoginEvents(proxy: Proxy, user: string, count: number, timeoutMs = 5000): Promise<LoginEvent[]> {
  return eventually(
    `${count} LOGIN lines of '${user}'`,
    () => {
      const ev = loginEvents(proxy, user);
      return ev.length >= count ? ev : undefined;
    },
    timeoutMs,
    () => proxy.log().join('\n'),
  );
}

/** Waits until at least `count` log lines match `re` and returns them. */
export function waitForLogLines(proxy: Proxy, re: RegExp, count = 1, timeoutMs = 5000): Promise<string[]> {
  return eventually(
    `${count} log line(s) matching ${re}`,
    () => {
      const lines = logLines(proxy, re);
      return lines.length >= count ? lines : undefined;
    },
    timeoutMs,
    () => proxy.log().join('\n'),
  );
}

/**
 * Waits until `LOGOUT: '<user>' from server sd [N]` was logged `count` times, i.e. the
 * connection is back in the pool. The proxy answers a client's LOGOUT before it has
 * unselected the mailbox on the server, so a login right after a session that selected
 * something could otherwise race the clean-up and get a new connection.
 */
export function waitForCached(proxy: Proxy, user: string, count = 1, timeoutMs = 5000): Promise<string[]> {
  return waitForLogLines(proxy, new RegExp(`LOGOUT: '${reEscape(user)}' from server sd \\[\\d+\\]$`), count, timeoutMs);
}

/** Escapes text for use inside a RegExp. */
export function reEscape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The server sd of the last successful LOGIN of `user` in the log. */
export function lastLoginSd(proxy: Proxy, user: string): number {
  const last = loginEvents(proxy, user).at(-1);
  if (!last) throw new Error(`no LOGIN of ${user} in the proxy log:\n${proxy.log().join('\n')}`);
  return last.sd;
}

/**
 * Waits for the proxy's verdict on server sd `sd` of `user` in log lines after
 * index `from`: cached after the session ended, or closed (invalidated or expired).
 */
export function waitForVerdict(proxy: Proxy, user: string, sd: number, from: number, timeoutMs = 15_000): Promise<'cached' | 'closed'> {
  return eventually(`the verdict on server sd [${sd}]`, () => {
    for (const line of proxy.log().slice(from)) {
      if (line.includes(`LOGOUT: '${user}' from server sd [${sd}]`)) return 'cached' as const;
      if (line.includes(`Invalidating server sd [${sd}]`) || line.includes(`Expiring server sd [${sd}]`)) return 'closed' as const;
    }
    return undefined;
  }, timeoutMs, () => proxy.log().join('\n'));
}

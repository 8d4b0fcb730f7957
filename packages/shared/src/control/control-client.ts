// imapproxyctl's end of the control socket: one request, one answer, and a
// clear error with its own exit status when there is no daemon to ask.

import net from 'node:net';
import { ImapProxyError, type ErrorCode } from '../errors.js';
import type { ControlRequest, ControlResponse } from './control-protocol.js';

/** imapproxyctl's exit statuses (sysexits.h numbers where one fits); the README lists them. */
export const CTL_EXIT = {
  ok: 0,
  /** The daemon answered with an error. */
  failed: 1,
  /** Bad command line. */
  usage: 64,
  /** No daemon: the socket does not exist, or nobody listens on it. */
  notRunning: 69,
  /** No answer in time. */
  timeout: 75,
  /** The answer was not understood (or the connection closed without one). */
  protocol: 76,
  /** The socket exists but this user may not use it. */
  noPermission: 77,
  /** The configuration file could not be read. */
  config: 78,
} as const;

export class ControlClientError extends ImapProxyError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly exitCode: number,
  ) {
    super(code, message);
  }
}

export async function sendControlRequest<C extends ControlRequest>(socketPath: string, request: C, timeoutMs = 10_000): Promise<ControlResponse<C['cmd']>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buffered = '';
    let settled = false;
    const finish = (err: Error | null, value?: ControlResponse<C['cmd']>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(
      () => finish(new ControlClientError('IMAPPROXY_ERR_TIMEOUT', `no answer from the daemon on ${socketPath} within ${timeoutMs / 1000} s`, CTL_EXIT.timeout)),
      timeoutMs,
    );
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (s: string) => {
      buffered += s;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      let body: unknown;
      try {
        body = JSON.parse(buffered.slice(0, nl));
      } catch {
        return finish(new ControlClientError('IMAPPROXY_ERR_CONTROL', `unreadable answer from ${socketPath}`, CTL_EXIT.protocol));
      }
      if (typeof body !== 'object' || body === null || typeof (body as { ok?: unknown }).ok !== 'boolean') {
        return finish(new ControlClientError('IMAPPROXY_ERR_CONTROL', `unexpected answer from ${socketPath}`, CTL_EXIT.protocol));
      }
      finish(null, body as ControlResponse<C['cmd']>);
    });
    socket.once('end', () => finish(new ControlClientError('IMAPPROXY_ERR_CONTROL', `the daemon closed ${socketPath} without answering`, CTL_EXIT.protocol)));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(connectError(socketPath, err)));
  });
}

function connectError(socketPath: string, err: NodeJS.ErrnoException): ControlClientError {
  switch (err.code) {
    case 'ENOENT':
      return new ControlClientError('IMAPPROXY_ERR_NOT_RUNNING', `imapproxyd is not running: control socket ${socketPath} does not exist`, CTL_EXIT.notRunning);
    case 'ECONNREFUSED':
      return new ControlClientError('IMAPPROXY_ERR_NOT_RUNNING', `imapproxyd is not running: nothing listens on control socket ${socketPath}`, CTL_EXIT.notRunning);
    case 'ENOTDIR':
    case 'ENOTSOCK':
      return new ControlClientError('IMAPPROXY_ERR_NOT_RUNNING', `${socketPath} is not a control socket (${err.code})`, CTL_EXIT.notRunning);
    case 'EACCES':
    case 'EPERM':
      return new ControlClientError(
        'IMAPPROXY_ERR_ACCESS',
        `permission denied on control socket ${socketPath}: run imapproxyctl as root or as proc_username`,
        CTL_EXIT.noPermission,
      );
    default:
      return new ControlClientError('IMAPPROXY_ERR_CONTROL', `cannot connect to control socket ${socketPath}: ${err.message}`, CTL_EXIT.notRunning);
  }
}

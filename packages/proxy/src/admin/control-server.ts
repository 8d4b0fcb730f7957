// The daemon's end of the control socket (`control_socket`). Only processes
// that may open the socket file can talk to it: mode 0600, owned by
// proc_username, so root and the daemon's own user. That is the whole access
// control, and it is why administration belongs here rather than in the
// XPROXY_* commands, which anyone who reaches the IMAP port can send.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ImapProxyError } from '@imapproxy/shared';
import type { Logger } from '../log/logger.js';
import { CONTROL_COMMANDS, MAX_REQUEST_BYTES, type ControlCommand, type ControlRequest, type ControlResponse } from '@imapproxy/shared';

export type ControlHandler = (request: ControlRequest) => Promise<object> | object;

/** A control connection that says nothing for this long is closed. */
const IDLE_TIMEOUT_MS = 60_000;

export interface ControlServerOptions {
  /** Owner of the socket (and of its directory when this creates it): proc_username when started as root. */
  owner?: { uid: number; gid: number };
}

export class ControlServer {
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly path: string,
    private readonly server: net.Server,
    private readonly log: Logger,
  ) {}

  /** Creates the directory if needed, clears a stale socket, listens. Throws ImapProxyError (IMAPPROXY_ERR_CONTROL). */
  static async listen(socketPath: string, handler: ControlHandler, log: Logger, opts: ControlServerOptions = {}): Promise<ControlServer> {
    const dir = path.dirname(socketPath);
    try {
      const created = fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      // A directory made here (/run/imapproxy after a reboot) belongs to the
      // daemon's user, so it can remove its socket and pid file at exit.
      if (created !== undefined && opts.owner) fs.chownSync(dir, opts.owner.uid, opts.owner.gid);
    } catch (err) {
      throw controlError(`cannot create the directory of control_socket ${socketPath}: ${(err as Error).message}`, err);
    }
    await clearStaleSocket(socketPath);
    const server = net.createServer();
    const control = new ControlServer(socketPath, server, log);
    server.on('connection', (socket) => control.serve(socket, handler));
    // umask so the socket is never reachable by others, not even between bind and chmod.
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw controlError(`cannot listen on control_socket ${socketPath}: ${(err as Error).message}`, err);
    } finally {
      process.umask(oldMask);
    }
    server.on('error', (err) => log.err(`control socket: ${err.message}`));
    fs.chmodSync(socketPath, 0o600);
    if (opts.owner) fs.chownSync(socketPath, opts.owner.uid, opts.owner.gid);
    return control;
  }

  /** Stops listening, drops open control connections and removes the socket file. */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => {
      this.server.close(() => {
        // net.Server unlinks its socket on close; this covers the case where it could not.
        fs.rm(this.path, { force: true }, () => resolve());
      });
    });
  }

  private serve(socket: net.Socket, handler: ControlHandler): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    let chain = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      let nl: number;
      while ((nl = buffered.indexOf(0x0a)) >= 0) {
        const line = buffered.subarray(0, nl).toString('utf8').trim();
        buffered = buffered.subarray(nl + 1);
        if (line === '') continue;
        chain = chain.then(() => this.answer(socket, line, handler));
      }
      if (buffered.length > MAX_REQUEST_BYTES) {
        const body: ControlResponse = { ok: false, error: { code: 'IMAPPROXY_ERR_CONTROL_REQUEST', message: `request longer than ${MAX_REQUEST_BYTES} bytes` } };
        socket.end(`${JSON.stringify(body)}\n`);
        buffered = Buffer.alloc(0);
      }
    });
  }

  private async answer(socket: net.Socket, line: string, handler: ControlHandler): Promise<void> {
    let response: ControlResponse;
    try {
      const request = parseRequest(line);
      const result = await handler(request);
      response = { ok: true, ...result } as ControlResponse;
    } catch (err) {
      const code = err instanceof ImapProxyError ? err.code : 'IMAPPROXY_ERR_CONTROL';
      if (!(err instanceof ImapProxyError)) this.log.err(`control socket: ${(err as Error).stack ?? String(err)}`);
      response = { ok: false, error: { code, message: (err as Error).message } };
    }
    if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(response)}\n`);
  }
}

/** Checks a request line; throws IMAPPROXY_ERR_CONTROL_REQUEST with what is wrong. */
export function parseRequest(line: string): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw badRequest('not a JSON object');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('not a JSON object');
  const req = value as Record<string, unknown>;
  const cmd = req.cmd;
  if (typeof cmd !== 'string' || !(CONTROL_COMMANDS as readonly string[]).includes(cmd)) {
    throw badRequest(`unknown command ${JSON.stringify(cmd)}; known: ${CONTROL_COMMANDS.join(', ')}`);
  }
  const optionalUser = (): string | undefined => {
    if (req.user === undefined || req.user === null) return undefined;
    if (typeof req.user !== 'string' || req.user === '') throw badRequest('user: expected a non-empty string');
    return req.user;
  };
  switch (cmd as ControlCommand) {
    case 'flush':
      return { cmd: 'flush', user: optionalUser() };
    case 'trace-off':
      return { cmd: 'trace-off', user: optionalUser() };
    case 'trace': {
      const users = req.users;
      if (!Array.isArray(users) || users.length === 0 || !users.every((u) => typeof u === 'string' && u !== '')) {
        throw badRequest('users: expected a non-empty array of non-empty strings');
      }
      return { cmd: 'trace', users: users as string[] };
    }
    default:
      return { cmd } as ControlRequest;
  }
}

/** Another daemon answers on the control socket: this one must not start. */
export class ControlSocketInUseError extends ImapProxyError {
  constructor(socketPath: string) {
    super('IMAPPROXY_ERR_CONTROL', `control_socket ${socketPath} is in use: is another imapproxyd running with this configuration?`);
  }
}

function badRequest(message: string): ImapProxyError {
  return new ImapProxyError('IMAPPROXY_ERR_CONTROL_REQUEST', message);
}

function controlError(message: string, cause: unknown): ImapProxyError {
  return new ImapProxyError('IMAPPROXY_ERR_CONTROL', message, { cause });
}

/**
 * A socket file left by a daemon that died is removed; one that still answers
 * means another daemon uses this control_socket, and this one must not take
 * it over (imapproxyctl would talk to the wrong daemon).
 */
async function clearStaleSocket(socketPath: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) throw controlError(`control_socket ${socketPath} exists and is not a socket`, undefined);
  const answers = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    const timer = setTimeout(() => {
      probe.destroy();
      resolve(true);
    }, 1000);
    probe.once('connect', () => {
      clearTimeout(timer);
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (answers) throw new ControlSocketInUseError(socketPath);
  fs.rmSync(socketPath, { force: true });
}

// AUTHENTICATE PLAIN (RFC 4616, with SASL-IR, RFC 4959) and AUTHENTICATE
// LOGIN, answered by the proxy; the server login is then the same as for
// LOGIN. `*` cancels (RFC 3501 §6.2.2); the original had no cancel and wrote
// out of bounds on it (SPEC §11 B11).

import type { Arg } from '@imapproxy/shared';
import type { PreauthCommand } from '../command.js';
import type { PreauthSession } from '../command.js';

const USERNAME_PROMPT = 'VXNlcm5hbWU6'; // "Username:"
const PASSWORD_PROMPT = 'UGFzc3dvcmQ6'; // "Password:"

class Cancelled extends Error {}

export const authenticate: PreauthCommand = {
  name: 'AUTHENTICATE',
  async handle(session, tag, args) {
    if (session.refusesPlaintextAuth(tag)) return;
    const mech = args[0]?.kind === 'atom' ? args[0].value.toUpperCase() : null;
    if (mech === null) {
      session.send(`${tag} BAD Missing required argument to Authenticate\r\n`);
      return;
    }
    const initial = initialResponse(args[1]);
    if (args.length > 2 || initial === undefined) {
      session.send(`${tag} BAD Invalid arguments to Authenticate\r\n`);
      return;
    }
    try {
      if (mech === 'PLAIN') await plain(session, tag, initial);
      else if (mech === 'LOGIN') await loginMech(session, tag, initial);
      else session.send(`${tag} NO no mechanism available\r\n`);
    } catch (err) {
      if (!(err instanceof Cancelled)) throw err;
      session.send(`${tag} BAD AUTHENTICATE cancelled\r\n`);
    }
  },
};

/** The SASL-IR argument: null when absent, undefined when malformed. */
function initialResponse(arg: Arg | undefined): Buffer | null | undefined {
  if (arg === undefined) return null;
  if (arg.kind !== 'atom') return undefined;
  if (arg.value === '=') return Buffer.alloc(0);
  return decodeBase64(arg.value) ?? undefined;
}

function decodeBase64(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  return Buffer.from(text, 'base64');
}

/** One client response to a `+` challenge; `*` cancels. */
async function respond(session: PreauthSession, challenge: string): Promise<Buffer | null> {
  session.send(`+ ${challenge}\r\n`);
  const line = (await session.readLine()).toString('latin1').trimEnd();
  if (line === '*') throw new Cancelled();
  return decodeBase64(line);
}

async function plain(session: PreauthSession, tag: string, initial: Buffer | null): Promise<void> {
  const message = initial ?? (await respond(session, ''));
  if (message === null) {
    session.send(`${tag} BAD Invalid base64 data\r\n`);
    return;
  }
  // authzid NUL authcid NUL password
  const first = message.indexOf(0);
  const second = first < 0 ? -1 : message.indexOf(0, first + 1);
  if (first < 0 || second < 0) {
    session.send(`${tag} BAD Invalid PLAIN message\r\n`);
    return;
  }
  const authzid = message.subarray(0, first);
  const user = message.subarray(first + 1, second);
  const password = message.subarray(second + 1);
  if (user.length === 0) {
    session.send(`${tag} BAD Invalid PLAIN message\r\n`);
    return;
  }
  if (authzid.length > 0 && !authzid.equals(user)) {
    session.send(`${tag} NO [AUTHORIZATIONFAILED] Authorization identity not supported\r\n`);
    return;
  }
  await session.login(tag, { user, password }, 'AUTHENTICATE');
}

async function loginMech(session: PreauthSession, tag: string, initial: Buffer | null): Promise<void> {
  const user = initial ?? (await respond(session, USERNAME_PROMPT));
  const password = user === null ? null : await respond(session, PASSWORD_PROMPT);
  if (user === null || password === null || user.length === 0) {
    session.send(`${tag} BAD Invalid base64 data\r\n`);
    return;
  }
  await session.login(tag, { user, password }, 'AUTHENTICATE');
}

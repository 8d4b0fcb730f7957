// Reading a whole client command after login: its segments (each line of it,
// every one but the last ending with a literal marker) are parsed with the
// authenticated-state grammar and looked up in the command-traits table. The
// literals' data is not needed for that and is never held: each literal stands
// for a string of unknown content here.

import { ArgumentError, parseArguments, readTagAndName } from './arguments.js';
import { understandCommand, type Understanding } from './command-traits.js';

const EMPTY = Buffer.alloc(0);

export interface ClientCommandReading {
  tag: string | null;
  /** Upper case; `UID` for UID commands. Empty when the line has no readable name. */
  name: string;
  understanding: Understanding;
}

/**
 * `segments`: the command's lines without their line endings. With
 * `prefix`, the last segment's literal has not arrived yet and the command
 * is read as far as it goes (what is decided at its first line): a prefix not
 * understood will not be understood whole either.
 */
export function readClientCommand(segments: Buffer[], prefix = false): ClientCommandReading {
  const first = segments[0] ?? EMPTY;
  const head = readTagAndName(first);
  if ('error' in head) {
    return { tag: head.tag, name: '', understanding: { understood: false, unknown: false, reason: head.error === 'tag' ? 'a line without a valid tag' : 'a command without a name' } };
  }
  const lines = prefix ? [...segments, EMPTY] : segments;
  const literals = lines.slice(1).map(() => EMPTY);
  try {
    const args = parseArguments({ segments: lines, literals }, head.rest, { authenticated: true });
    return { tag: head.tag, name: head.name, understanding: understandCommand(head.name, args, prefix) };
  } catch (err) {
    if (!(err instanceof ArgumentError)) throw err;
    return { tag: head.tag, name: head.name, understanding: { understood: false, unknown: false, reason: `${head.name.slice(0, 40).replace(/[^\x21-\x7e]/g, '?')}: ${err.message}` } };
  }
}

// The command-traits table: every client command the proxy lets a server
// connection be reused after, with the shape of its arguments and what it does
// to the session. It is an allow-list: a command that is not here, or whose
// arguments do not parse into the shape given here, is not understood, and a
// session with a command it did not understand never gives its server
// connection back to the pool (reuse by proof). The relay, the select cache
// and the clean-up decision all read this one table.
//
// What "session state" means here (what a later session on the same server
// connection could notice):
// - the selected mailbox (SELECT/EXAMINE, CLOSE/UNSELECT);
// - extensions switched on, explicitly (ENABLE) or implicitly: RFC 7162 §3.1
//   lists every command that switches CONDSTORE on by using a MODSEQ-related
//   item, parameter or criterion;
// - state tied to the selected mailbox: the saved search result `$` (RFC 5182
//   SEARCHRES) and live search updates (RFC 5267 CONTEXT=SEARCH);
// - what cannot be undone at all: another identity (LOGIN, AUTHENTICATE,
//   UNAUTHENTICATE), a TLS or compression layer, notifications, a language.

import type { Arg } from './arguments.js';

/** What one understood command does. */
export interface CommandUse {
  /** The command's name, `UID FETCH` style for UID commands. */
  name: string;
  /** May leave a mailbox selected (SELECT, EXAMINE). */
  selects: boolean;
  /** Leaves no mailbox selected once it succeeds (CLOSE, UNSELECT). */
  unselects: boolean;
  /** Extensions switched on for the rest of the session. */
  enables: string[];
  /** Why nothing of the session can be handed to another one, or null. */
  irreversible: string | null;
  /** State kept with the selected mailbox until it is unselected, or null. */
  selectionState: string | null;
  /**
   * The reply does not depend on which mailbox is selected, so the command
   * may reach the server while a mailbox an earlier session left selected
   * still is (the relay keeps news about that mailbox from the client).
   */
  independentOfSelection: boolean;
  /**
   * What the command may change of a SELECT reply: nothing; only the mailbox
   * named (APPEND, COPY into it: the selected one is left alone unless it is
   * that mailbox); or the selected mailbox (anything else).
   */
  touches: 'nothing' | 'selected' | { mailbox: Buffer };
  /** The mailbox a STATUS, SELECT or EXAMINE names, when given as an atom or quoted string. */
  mailbox: Buffer | null;
}

export type Understanding =
  | { understood: true; use: CommandUse }
  /** `unknown`: the command is not in the table at all (else its arguments are not of its shape). */
  | { understood: false; unknown: boolean; reason: string };

type Shape = (args: Arg[]) => boolean;

interface Traits {
  /** The arguments after the name (after the sub-command for UID commands). */
  shape: Shape;
  independentOfSelection?: boolean;
  /** Never changes a SELECT reply (or only by a MODSEQ/flag-setting form decided below). */
  readOnly?: boolean;
  selects?: boolean;
  unselects?: boolean;
  irreversible?: boolean;
  /** Arguments from this index on may name MODSEQ items (mailbox names before it are not searched). */
  modseqFrom?: number;
  /**
   * No argument of the command is a string, so a literal is never valid in
   * it. Servers refuse such a line early, before they would read the
   * literal, and then take the literal's bytes for commands (found against
   * Dovecot: `x NOOP {16+}` smuggled a SELECT): the proxy must know at the
   * literal's announcement, not at the command's end, which it may never see.
   */
  noLiterals?: boolean;
}

// --- argument shapes -----------------------------------------------------------

const isString = (a: Arg | undefined): boolean => a !== undefined && (a.kind === 'atom' || a.kind === 'string');
const isMailbox = isString;
const isList = (a: Arg | undefined): boolean => a !== undefined && a.kind === 'list';
const isAtom = (a: Arg | undefined, re?: RegExp): boolean => a !== undefined && a.kind === 'atom' && (re === undefined || re.test(a.value));
const SEQ_NUMBER = '(?:[1-9][0-9]*|\\*)';
const SEQ_RANGE = `${SEQ_NUMBER}(?::${SEQ_NUMBER})?`;
/** sequence-set (RFC 3501) or `$` (RFC 5182). */
const SEQUENCE_SET = new RegExp(`^(?:\\$|${SEQ_RANGE}(?:,${SEQ_RANGE})*)$`);
const isSequenceSet = (a: Arg | undefined): boolean => isAtom(a, SEQUENCE_SET);
const atomsOnly = (a: Arg | undefined): boolean => a !== undefined && a.kind === 'list' && a.items.every((i) => i.kind === 'atom');

const none: Shape = (args) => args.length === 0;
const mailbox: Shape = (args) => args.length === 1 && isMailbox(args[0]);
const mailboxAnd = (...rest: Array<(a: Arg | undefined) => boolean>): Shape =>
  (args) => args.length === rest.length + 1 && isMailbox(args[0]) && rest.every((ok, i) => ok(args[i + 1]));
const atLeast = (n: number): Shape => (args) => args.length >= n;
const optional = (ok: (a: Arg | undefined) => boolean) => (a: Arg | undefined): boolean => a === undefined || ok(a);

/** `[list] mailbox]`: SELECT, EXAMINE, CREATE with parameters. */
const mailboxWithParams: Shape = (args) => (args.length === 1 || args.length === 2) && isMailbox(args[0]) && optional(isList)(args[1]);

/** LIST (RFC 3501 and RFC 5258 extended): `[(options)] reference pattern|(patterns) [RETURN (options)]`. */
const listShape: Shape = (args) => {
  let i = isList(args[0]) ? 1 : 0;
  if (!isMailbox(args[i]) || !(isMailbox(args[i + 1]) || isList(args[i + 1]))) return false;
  i += 2;
  if (i === args.length) return true;
  return i + 2 === args.length && isAtom(args[i], /^RETURN$/i) && isList(args[i + 1]);
};

/** FETCH: `sequence-set (items) | item [(modifiers)]`. */
const fetchShape: Shape = (args) =>
  (args.length === 2 || args.length === 3) && isSequenceSet(args[0]) && (isAtom(args[1]) || isList(args[1])) && optional(isList)(args[2]);

/** STORE: `sequence-set [(modifiers)] FLAGS|+FLAGS|-FLAGS[.SILENT] (flags)|flag...`. */
const storeShape: Shape = (args) => {
  if (!isSequenceSet(args[0])) return false;
  let i = isList(args[1]) ? 2 : 1;
  if (!isAtom(args[i], /^[+-]?FLAGS(\.SILENT)?$/i)) return false;
  i++;
  if (i === args.length - 1 && isList(args[i])) return atomsOnly(args[i]);
  return i < args.length && args.slice(i).every((a) => isAtom(a));
};

/** SEARCH: `[RETURN (options)] [CHARSET name] key...`. */
const searchShape: Shape = (args) => {
  let i = 0;
  if (isAtom(args[0], /^RETURN$/i)) {
    if (!isList(args[1])) return false;
    i = 2;
  }
  if (isAtom(args[i], /^CHARSET$/i)) {
    if (!isString(args[i + 1])) return false;
    i += 2;
  }
  return i < args.length;
};

/** SORT: `[RETURN (options)] (criteria) charset key...`. */
const sortShape: Shape = (args) => {
  const i = isAtom(args[0], /^RETURN$/i) ? 2 : 0;
  if (i === 2 && !isList(args[1])) return false;
  return atomsOnly(args[i]) && isString(args[i + 1]) && args.length > i + 2;
};

/** THREAD: `algorithm charset key...`. */
const threadShape: Shape = (args) => isAtom(args[0]) && isString(args[1]) && args.length > 2;

/** APPEND: `mailbox ([flags]) [date] message` once or more (MULTIAPPEND), messages literal or CATENATE/UTF8 lists. */
const appendShape: Shape = (args) => isMailbox(args[0]) && args.length >= 2 && args.slice(1).every((a) => a.kind !== 'nil');

/** GETMETADATA: `[(options)] mailbox entry|(entries)`. */
const getMetadataShape: Shape = (args) => {
  const i = isList(args[0]) ? 1 : 0;
  return args.length === i + 2 && isMailbox(args[i]) && (isString(args[i + 1]) || isList(args[i + 1]));
};

// --- the table -------------------------------------------------------------------

const TABLE: Record<string, Traits> = {
  CAPABILITY: { shape: none, independentOfSelection: true, readOnly: true, noLiterals: true },
  NOOP: { shape: none, independentOfSelection: true, readOnly: true, noLiterals: true },
  ID: { shape: (args) => args.length === 1 && (isList(args[0]) || args[0]!.kind === 'nil'), independentOfSelection: true, readOnly: true },
  NAMESPACE: { shape: none, independentOfSelection: true, readOnly: true, noLiterals: true },
  LIST: { shape: listShape, independentOfSelection: true, readOnly: true, modseqFrom: 0 },
  LSUB: { shape: mailboxAnd(isMailbox), independentOfSelection: true, readOnly: true },
  XLIST: { shape: mailboxAnd(isMailbox), readOnly: true },
  CREATE: { shape: mailboxWithParams, independentOfSelection: true, readOnly: true },
  SUBSCRIBE: { shape: mailbox, independentOfSelection: true, readOnly: true },
  UNSUBSCRIBE: { shape: mailbox, independentOfSelection: true, readOnly: true },
  GETQUOTA: { shape: mailbox, independentOfSelection: true, readOnly: true },
  GETQUOTAROOT: { shape: mailbox, independentOfSelection: true, readOnly: true },
  // Dovecot answers STATUS of the selected mailbox from its session's view.
  STATUS: { shape: mailboxAnd(atomsOnly), readOnly: true, modseqFrom: 1 },
  CHECK: { shape: none, readOnly: true, noLiterals: true },
  IDLE: { shape: none, readOnly: true, noLiterals: true },
  GETACL: { shape: mailbox, readOnly: true },
  MYRIGHTS: { shape: mailbox, readOnly: true },
  LISTRIGHTS: { shape: mailboxAnd(isString), readOnly: true },
  GETMETADATA: { shape: getMetadataShape, readOnly: true },
  SEARCH: { shape: searchShape, readOnly: true, modseqFrom: 0 },
  SORT: { shape: sortShape, readOnly: true, modseqFrom: 0 },
  THREAD: { shape: threadShape, readOnly: true, modseqFrom: 0 },
  FETCH: { shape: fetchShape, readOnly: true, modseqFrom: 1, noLiterals: true },
  SELECT: { shape: mailboxWithParams, selects: true, modseqFrom: 1 },
  EXAMINE: { shape: mailboxWithParams, selects: true, modseqFrom: 1 },
  CLOSE: { shape: none, unselects: true, noLiterals: true },
  UNSELECT: { shape: none, unselects: true, noLiterals: true },
  DELETE: { shape: mailbox },
  RENAME: { shape: (args) => (args.length === 2 || args.length === 3) && isMailbox(args[0]) && isMailbox(args[1]) && optional(isList)(args[2]) },
  APPEND: { shape: appendShape },
  STORE: { shape: storeShape, modseqFrom: 1, noLiterals: true },
  COPY: { shape: (args) => args.length === 2 && isSequenceSet(args[0]) && isMailbox(args[1]) },
  MOVE: { shape: (args) => args.length === 2 && isSequenceSet(args[0]) && isMailbox(args[1]) },
  EXPUNGE: { shape: none, noLiterals: true },
  SETACL: { shape: mailboxAnd(isString, isString) },
  DELETEACL: { shape: mailboxAnd(isString) },
  SETMETADATA: { shape: mailboxAnd(isList) },
  SETQUOTA: { shape: (args) => args.length === 2 && isString(args[0]) && isList(args[1]) },
  CANCELUPDATE: { shape: (args) => args.length >= 1 && args.every(isString) },
  ENABLE: { shape: (args) => args.length >= 1 && args.every((a) => isAtom(a)), noLiterals: true },
  // Understood, and the end of reuse: what they change cannot be undone.
  LOGIN: { shape: (args) => args.length === 2 && args.every(isString), irreversible: true },
  AUTHENTICATE: { shape: atLeast(1), irreversible: true },
  UNAUTHENTICATE: { shape: none, irreversible: true, noLiterals: true },
  STARTTLS: { shape: none, irreversible: true, noLiterals: true },
  // Irreversible once it succeeds; a refused COMPRESS changes nothing. The
  // relay sees the OK (after which it reads nothing more) and says so.
  COMPRESS: { shape: (args) => args.length === 1 && isAtom(args[0]), noLiterals: true },
  NOTIFY: { shape: atLeast(1), irreversible: true },
  LANGUAGE: { shape: () => true, irreversible: true },
};

/** Commands that also come as `UID <name>`, and the table entry each uses. */
const UID_COMMANDS: Record<string, Traits> = {
  FETCH: TABLE.FETCH!,
  STORE: TABLE.STORE!,
  COPY: TABLE.COPY!,
  MOVE: TABLE.MOVE!,
  SEARCH: TABLE.SEARCH!,
  SORT: TABLE.SORT!,
  THREAD: TABLE.THREAD!,
  EXPUNGE: { shape: (args) => args.length === 1 && isSequenceSet(args[0]), noLiterals: true },
};

/** Whether `name` (upper case, `UID` alone for UID commands) is in the table at all. */
export function isKnownCommand(name: string): boolean {
  return name === 'UID' || Object.hasOwn(TABLE, name);
}

/** Atoms (not strings) that switch CONDSTORE on when a command uses them (RFC 7162 §3.1). */
const CONDSTORE_WORDS = /^(?:CONDSTORE|MODSEQ|CHANGEDSINCE|UNCHANGEDSINCE|HIGHESTMODSEQ)$/i;

/** FETCH items that set \Seen: everything but the .PEEK forms, RFC822.HEADER and RFC822.SIZE. */
const SETS_SEEN = /^(?:BODY\[|BINARY\[|RFC822$|RFC822\.TEXT$)/i;

/**
 * Reads a parsed command: `name` upper case as it came (`UID` for UID
 * commands, whose sub-command is `args[0]`), `args` parsed with the
 * authenticated-state grammar. Anything not in the table, or not of its shape,
 * is not understood. With `prefix`, `args` end with a literal whose command
 * goes on: what is known at that point (not understood: never will be).
 */
export function understandCommand(name: string, args: Arg[], prefix = false): Understanding {
  let traits: Traits | undefined;
  let fullName = name;
  let rest = args;
  if (name === 'UID') {
    const sub = args[0]?.kind === 'atom' ? args[0].value.toUpperCase() : '';
    traits = Object.hasOwn(UID_COMMANDS, sub) ? UID_COMMANDS[sub] : undefined;
    fullName = `UID ${sub}`;
    rest = args.slice(1);
  } else if (Object.hasOwn(TABLE, name)) {
    traits = TABLE[name];
  }
  if (traits === undefined) return { understood: false, unknown: true, reason: `unknown command ${printable(fullName)}` };
  if (prefix && traits.noLiterals === true) return { understood: false, unknown: false, reason: `a literal in ${fullName}` };
  // A prefix (the command goes on after a literal) is checked for its shape at its end.
  if (!prefix && !traits.shape(rest)) return { understood: false, unknown: false, reason: `unexpected arguments to ${fullName}` };

  const use: CommandUse = {
    name: fullName,
    selects: traits.selects === true,
    unselects: traits.unselects === true,
    enables: [],
    irreversible: traits.irreversible === true ? `${fullName} inside the session` : null,
    selectionState: null,
    independentOfSelection: traits.independentOfSelection === true,
    touches: traits.readOnly === true ? 'nothing' : 'selected',
    mailbox: null,
  };
  if (fullName === 'STATUS' || fullName === 'SELECT' || fullName === 'EXAMINE') {
    const named = mailboxTarget(rest[0]);
    if (typeof named === 'object') use.mailbox = named.mailbox;
  }

  if (fullName === 'ENABLE') {
    use.enables = rest.map((a) => (a.kind === 'atom' ? a.value.toUpperCase() : ''));
  } else if (traits.modseqFrom !== undefined) {
    const words = new Set<string>();
    collectAtoms(rest.slice(traits.modseqFrom), words);
    if ([...words].some((w) => CONDSTORE_WORDS.test(w))) use.enables.push('CONDSTORE');
    if (words.has('QRESYNC') || words.has('VANISHED')) use.enables.push('QRESYNC');
    // LIST-STATUS (RFC 5819) asks for STATUS of every mailbox listed: the
    // selected one's answer depends on the selection, as STATUS's does.
    if (fullName === 'LIST' && words.has('STATUS')) use.independentOfSelection = false;
    if (/SEARCH$|SORT$/.test(fullName)) {
      const options = returnOptions(rest);
      if (options.has('SAVE')) use.selectionState = 'a saved search result ($, RFC 5182)';
      else if (options.has('UPDATE') || options.has('CONTEXT')) use.selectionState = 'search updates (RFC 5267)';
    }
    if (/FETCH$/.test(fullName) && fetchItems(rest[1]).some((i) => SETS_SEEN.test(i))) use.touches = 'selected';
  }

  // APPEND, COPY and MOVE leave the selected mailbox alone unless it is their
  // target (MOVE expunges from the selected one: never).
  if (fullName === 'APPEND') use.touches = mailboxTarget(rest[0]);
  else if (/COPY$/.test(fullName)) use.touches = mailboxTarget(rest[1]);
  return { understood: true, use };
}

/** A mailbox named by an atom or a quoted string; one given as a literal is not known here. */
function mailboxTarget(arg: Arg | undefined): CommandUse['touches'] {
  if (arg?.kind === 'atom') return { mailbox: Buffer.from(arg.value, 'latin1') };
  if (arg?.kind === 'string' && !arg.literal) return { mailbox: arg.value };
  return 'selected';
}

function collectAtoms(args: Arg[], into: Set<string>): void {
  for (const a of args) {
    if (a.kind === 'atom') into.add(a.value.toUpperCase());
    else if (a.kind === 'list') collectAtoms(a.items, into);
  }
}

function returnOptions(args: Arg[]): Set<string> {
  const out = new Set<string>();
  if (isAtom(args[0], /^RETURN$/i) && args[1]?.kind === 'list') collectAtoms(args[1].items, out);
  return out;
}

function fetchItems(arg: Arg | undefined): string[] {
  if (arg?.kind === 'atom') return [arg.value];
  if (arg?.kind === 'list') return arg.items.flatMap((i) => (i.kind === 'atom' ? [i.value] : []));
  return [];
}

/** A command name as it may be shown in a log line: printable ASCII only, at most 40 characters. */
function printable(name: string): string {
  const clean = name.replace(/[^\x21-\x7e ]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 40)}...` : clean;
}

// Client-supplied text (login names, ID strings, a server's reply text) shown
// to people: log lines, imapproxyctl, XPROXY_DUMPICC, trace record headers. A
// login name with CR LF forged log lines and IMAP response lines, one with ESC
// or a C1 CSI sent escape sequences to the terminal of whoever read the log
// or ran `imapproxyctl dump` (issue 16, finding 5). This is the one place that
// decides how such text is shown: control characters (C0, DEL, C1) become
// \xHH, everything else is left alone (a backslash too, so DOMAIN\user reads
// as before; the escape cannot be confused with a control byte, which never
// appears in the output).

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_ALL = /[\u0000-\u001f\u007f-\u009f]/g;

function hex(c: string): string {
  return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

/** `text` with every control character written as \xHH. */
export function printable(text: string): string {
  return CONTROL.test(text) ? text.replace(CONTROL_ALL, hex) : text;
}

/** JSON text with DEL and C1 escaped too (JSON.stringify escapes only C0); still valid JSON. */
export function printableJson(json: string): string {
  return json.replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Every string inside `value` (objects, arrays) made printable. */
export function printableDeep<T>(value: T): T {
  if (typeof value === 'string') return printable(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => printableDeep(v)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = printableDeep(v);
    return out as T;
  }
  return value;
}

/**
 * A login name holds a control byte: C0 (NUL, CR, LF, ESC, ...), DEL, or a C1
 * control encoded in UTF-8 (C2 80 - C2 9F). Such names are refused before any
 * server connection is opened: servers disagree on them (Dovecot stops at a
 * NUL), and they would be shown as \xHH forever after.
 */
export function hasControlBytes(name: Buffer): boolean {
  for (let i = 0; i < name.length; i++) {
    const b = name[i]!;
    if (b < 0x20 || b === 0x7f) return true;
    if (b === 0xc2 && i + 1 < name.length && name[i + 1]! >= 0x80 && name[i + 1]! <= 0x9f) return true;
  }
  return false;
}

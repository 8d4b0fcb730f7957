// Rewrites the server's capability list for clients before login (SPEC §4.2).
// Mechanisms and extensions the proxy handles itself before login replace the
// server's: it authenticates clients with LOGIN, AUTHENTICATE PLAIN (with
// SASL-IR) and AUTHENTICATE LOGIN whatever the server offers, and IDLE or
// STARTTLS cannot be used before login. XIMAPPROXY tells Horde and others that
// a proxy is in between.

export interface ServerCapabilities {
  /** The server's tokens as it sent them. */
  tokens: string[];
  startTls: boolean;
  loginDisabled: boolean;
  unselect: boolean;
  literalPlus: boolean;
}

const DROPPED = /^(AUTH=|SASL-IR|IDLE|STARTTLS|LOGINDISABLED)/i;
export const PROXY_ADDED = ['SASL-IR', 'AUTH=PLAIN', 'AUTH=LOGIN', 'XIMAPPROXY'];

export function readCapabilities(tokens: string[]): ServerCapabilities {
  const has = (re: RegExp) => tokens.some((t) => re.test(t));
  return {
    tokens,
    startTls: has(/^STARTTLS$/i),
    loginDisabled: has(/^LOGINDISABLED$/i),
    unselect: has(/^UNSELECT$/i),
    literalPlus: has(/^LITERAL\+$/i),
  };
}

/** The list clients see before login. */
export function rewriteCapabilities(tokens: string[]): string[] {
  return [...tokens.filter((t) => !DROPPED.test(t)), ...PROXY_ADDED];
}

/** Tokens of a `* CAPABILITY ...` line or of a `[CAPABILITY ...]` response code. */
export function capabilityTokens(text: string): string[] | null {
  const code = /\[CAPABILITY ([^\]]*)\]/i.exec(text);
  if (code) return code[1]!.split(' ').filter(Boolean);
  const line = /^\* CAPABILITY (.*)$/i.exec(text);
  if (line) return line[1]!.split(' ').filter(Boolean);
  return null;
}

/**
 * The greeting clients see: the server's own text with its capability code
 * rewritten. A greeting without a capability code passes through unchanged,
 * as in the original.
 */
export function rewriteGreeting(greeting: string): string {
  return greeting.replace(/\[CAPABILITY ([^\]]*)\]/i, (_m, list: string) => `[CAPABILITY ${rewriteCapabilities(list.split(' ').filter(Boolean)).join(' ')}]`);
}

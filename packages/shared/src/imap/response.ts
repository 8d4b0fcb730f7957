// Reading the parts of a server response line a proxy cares about.

/** The status of a tagged or untagged response: OK, NO, BAD, BYE, PREAUTH. */
export function responseStatus(line: string): { tag: string; status: string; text: string } | null {
  const m = /^(\S+) (OK|NO|BAD|BYE|PREAUTH)\b ?(.*)$/i.exec(line);
  if (!m) return null;
  return { tag: m[1]!, status: m[2]!.toUpperCase(), text: m[3]! };
}

/**
 * Fast check on the first bytes of a server line: does it complete `tag`?
 * Compares bytes without decoding, because the relay runs this on every line.
 */
export function completesTag(head: Buffer, tag: Buffer): boolean {
  const n = tag.length;
  if (head.length <= n || head[n] !== 0x20) return false;
  return head.compare(tag, 0, n, 0, n) === 0;
}

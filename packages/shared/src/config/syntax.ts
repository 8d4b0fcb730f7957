// The line syntax of imapproxy.conf, read as 1.2.8 reads it (SPEC §1.1), minus its traps (B6).
//
// Why not the `ini` package: ini@6 would change what existing files mean.
//   - `;` starts a comment in ini, so `auth_sasl_plain_password pa;ss` would become `pa`;
//   - a value in quotes is JSON-parsed, so `preauth_command "x"` would lose its quotes, and
//     `true`/`false`/`null` come back as booleans and null instead of strings;
//   - `[x]` opens a section and silently nests every later option under `x`;
//   - `\;` and `\#` are unescaped, a key ending in `[]` becomes an array;
//   - and it returns a plain object, with no line numbers for error messages or `sources`.
// Making ini safe would mean splitting each line ourselves (to keep its number), then escaping
// the value so that ini hands it back unchanged: ini would then do no work at all. The syntax
// fits in the function below.

/** One `keyword value` line; `keyword` as written, `value` possibly empty. */
export interface ConfigLine {
  line: number;
  keyword: string;
  value: string;
}

/** Splits a config text into its meaningful lines, skipping blank lines and comments. */
export function splitConfigLines(text: string): ConfigLine[] {
  const lines: ConfigLine[] = [];
  text.split('\n').forEach((rawLine, index) => {
    // As in 1.2.8: everything from the first `#` is a comment, so values cannot contain `#`;
    // then the line ends at the first CR (CRLF files, stray CRs).
    const content = rawLine.replace(/#.*/s, '').replace(/\r.*/s, '');
    // Unlike 1.2.8, blank and indented lines are fine and tabs separate like spaces (B6).
    const match = /^[ \t]*([^ \t]+)(?:[ \t]+(.*?))?[ \t]*$/s.exec(content);
    if (match === null) return;
    lines.push({ line: index + 1, keyword: match[1]!, value: match[2] ?? '' });
  });
  return lines;
}

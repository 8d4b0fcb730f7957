// Reading imapproxy.conf into a ProxyConfig. Unlike 1.2.8, defaults really apply to missing
// lines, unknown keywords are reported instead of silently ignored, and every bad value is an
// error naming file and line (SPEC §11 B6).
import { readFileSync } from 'node:fs';
import { getSystemErrorMap } from 'node:util';
import { ConfigError } from './config-error.js';
import { defaultConfig, findOption, OPTION_NAMES, type ProxyConfig } from './schema.js';
import { splitConfigLines, type ConfigLine } from './syntax.js';
import { expectedForm, readValue } from './value-types.js';

/** A problem that does not stop the program; the message is ready to log. */
export interface ConfigWarning {
  file: string;
  line: number;
  option: string;
  message: string;
}

export interface LoadedConfig {
  config: ProxyConfig;
  /** In line order. */
  warnings: ConfigWarning[];
  file: string;
  /** Option (canonical name) -> line its value came from; options left at their default are absent. */
  sources: Map<string, number>;
}

// Debian's init script and systemd unit pass this path; upstream's compiled-in
// /usr/etc/imapproxyd.conf was never where the file was (SPEC §11 B9).
export const DEFAULT_CONFIG_PATH = '/etc/imapproxy.conf';

/**
 * Reads config text; `file` is only used in messages. Throws ConfigError on the first bad line.
 * Pure, except that a port given by name is looked up in /etc/services (once per process).
 */
export function parseConfigText(text: string, file: string): LoadedConfig {
  const config = defaultConfig();
  const warnings: ConfigWarning[] = [];
  const sources = new Map<string, number>();
  let firstUnknown: ConfigLine | undefined;

  for (const entry of splitConfigLines(text)) {
    const { line, keyword, value } = entry;
    const option = keyword.toLowerCase();
    const spec = findOption(option);
    if (spec === undefined) {
      firstUnknown ??= entry;
      const near = nearestOption(option);
      const hint = near === undefined ? '' : `; did you mean '${near}'?`;
      warnings.push({ file, line, option: keyword, message: `${file}:${line}: unknown option '${keyword}' ignored${hint}` });
      continue;
    }
    const reading = value === ''
      ? { ok: false as const, problem: 'no value' }
      : readValue(spec, value);
    if (!reading.ok) {
      throw ConfigError.invalid({ file, line, option, problem: reading.problem, expected: expectedForm(spec) });
    }
    if (reading.warning !== undefined) {
      warnings.push({ file, line, option, message: `${file}:${line}: option '${option}': ${reading.warning}` });
    }
    // Every line is checked, but the last occurrence of an option wins, as in 1.2.8.
    (config as Record<string, unknown>)[option] = reading.value;
    sources.set(option, line);
  }

  // strict_config may come after the unknown line, so this is decided once the file is read.
  if (config.strict_config && firstUnknown !== undefined) {
    throw ConfigError.invalid({
      file,
      line: firstUnknown.line,
      option: firstUnknown.keyword,
      problem: 'unknown option',
      expected: 'a known option (see imapproxyd --help-config) or strict_config no',
    });
  }
  return { config, warnings, file, sources };
}

/** Reads and parses a config file synchronously (start-up and reload only). */
export function loadConfig(file: string): LoadedConfig {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw ConfigError.unreadable(file, systemReason(error), error);
  }
  // TextDecoder drops a UTF-8 byte order mark, which an editor may add and which would
  // otherwise become part of the first keyword.
  return parseConfigText(new TextDecoder().decode(bytes), file);
}

/** "no such file or directory (ENOENT)", from the libuv table rather than Node's message,
 * which repeats the path. */
function systemReason(error: unknown): string {
  const errno = (error as NodeJS.ErrnoException).errno;
  const known = errno === undefined ? undefined : getSystemErrorMap().get(errno);
  return known === undefined ? String(error) : `${known[1]} (${known[0]})`;
}

/** The known option a misspelt one most likely meant (at most 2 edits, or a third of its length), if any. */
export function nearestOption(word: string): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const name of OPTION_NAMES) {
    const d = editDistance(word, name);
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance (option names are short: the quadratic table is fine). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

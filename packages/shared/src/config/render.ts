// Text generated from the option table: `imapproxyd --help-config`, `imapproxyd -t` and the
// README option table, so documentation cannot drift from what the parser accepts.
import type { LoadedConfig } from './load.js';
import { OPTION_NAMES, OPTIONS, type OptionName, type OptionOrigin, type OptionSpec } from './schema.js';
import { formatValue, typeLabel } from './value-types.js';

const GROUP_TITLES: Record<OptionOrigin, string> = {
  '1.2.8': 'Options of up-imapproxy 1.2.8 (same keywords and meaning)',
  'imapproxy-ts': 'Options added by imapproxy-ts',
};

// Written in place of secrets by `-t`, whose output ends up in bug reports and terminals.
const SECRET_MASK = '********';

const NAME_WIDTH = Math.max(...OPTION_NAMES.map((name) => name.length));

/** Help for `imapproxyd --help-config`: every option with type, default and description. */
export function renderConfigHelp(): string {
  const typeWidth = Math.max(...OPTION_NAMES.map((name) => typeLabel(spec(name)).length));
  const out = [
    'imapproxy.conf holds one option per line: a keyword, blanks, then the value.',
    'Keywords are case-insensitive, a # starts a comment, and the last occurrence wins.',
  ];
  for (const [origin, names] of groups()) {
    out.push('', `${GROUP_TITLES[origin]}:`);
    for (const name of names) {
      const option = spec(name);
      out.push(`  ${name.padEnd(NAME_WIDTH)}  ${typeLabel(option).padEnd(typeWidth)}  default: ${defaultText(option)}`);
      out.push(`      ${option.description}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * The configuration in effect, for `imapproxyd -t`, in config-file syntax so it can be saved
 * and read back. Lines not set in the file say `# default`; unset options are commented out.
 */
export function renderEffectiveConfig(loaded: LoadedConfig): string {
  const rows = OPTION_NAMES.map((name) => {
    const value = loaded.config[name];
    const fromFile = loaded.sources.has(name);
    if (value === undefined) return { key: `# ${name}`, value: '(not set)', fromFile };
    return { key: name, value: isSecret(spec(name)) ? SECRET_MASK : formatValue(value), fromFile };
  });
  const valueWidth = Math.max(...rows.map((row) => row.value.length));
  const out = [`# effective configuration read from ${loaded.file}`];
  for (const row of rows) {
    const line = `${row.key.padEnd(NAME_WIDTH + 2)} ${row.value.padEnd(valueWidth)}  ${row.fromFile ? '' : '# default'}`;
    out.push(line.trimEnd());
  }
  return `${out.join('\n')}\n`;
}

/** The README option table (between the `<!-- options:begin -->` and `<!-- options:end -->` markers). */
export function renderOptionTableMarkdown(): string {
  const out = ['| name | type | default | description |', '|---|---|---|---|'];
  for (const [, names] of groups()) {
    for (const name of names) {
      const option = spec(name);
      const shown = defaultText(option);
      const cells = [`\`${name}\``, typeLabel(option), option.default === undefined ? shown : `\`${shown}\``, option.description];
      out.push(`| ${cells.map((cell) => cell.replaceAll('|', '\\|')).join(' | ')} |`);
    }
  }
  return `${out.join('\n')}\n`;
}

function spec(name: OptionName): OptionSpec {
  return OPTIONS[name];
}

function isSecret(option: OptionSpec): boolean {
  return 'secret' in option && option.secret === true;
}

function defaultText(option: OptionSpec): string {
  return option.default === undefined ? 'not set' : formatValue(option.default);
}

/** Option names by origin, 1.2.8 first, each in table order. */
function groups(): Array<[OptionOrigin, OptionName[]]> {
  const origins: OptionOrigin[] = ['1.2.8', 'imapproxy-ts'];
  return origins.map((origin) => [origin, OPTION_NAMES.filter((name) => spec(name).since === origin)]);
}

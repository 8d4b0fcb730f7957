// How a value of each option type is read, named in error messages and shown in help.
// The original read numbers with atoi() ("10abc" was 10, "abc" was 0) and fell back silently on
// unknown syslog names (SPEC §1.1, §1.2); here every value is either exact or an error.
import { servicePort } from './services.js';
import { parseHostList, parseNetworkList } from './lists.js';
import { FACILITIES, PRIORITIES, type OptionSpec } from './schema.js';

/** The outcome of reading one value: the value (maybe with a warning) or what is wrong with it. */
export type ValueReading =
  | { ok: true; value: unknown; warning?: string }
  | { ok: false; problem: string };

// setTimeout() fires at once for delays above 2^31-1 ms, so no number of seconds may exceed this.
const MAX_SECONDS = Math.floor(2147483647 / 1000);

const TRUE_WORDS = new Set(['yes', 'y', 'true', 'on']);
const FALSE_WORDS = new Set(['no', 'n', 'false', 'off']);

/** The form a value must take, as the end of an error message: "expected <this>". */
export function expectedForm(spec: OptionSpec): string {
  switch (spec.type) {
    case 'string': return 'a string';
    case 'path': return 'a path';
    case 'port': return 'a number 1-65535 or a service name';
    case 'integer': return `a whole number ${spec.min}-${spec.max}`;
    case 'seconds': return `a whole number of seconds ${spec.min}-${MAX_SECONDS}`;
    case 'boolean': return 'yes or no';
    case 'facility': return `one of ${FACILITIES.join(', ')}`;
    case 'priority': return `one of ${PRIORITIES.join(', ')}`;
    case 'ipversion': return '0 (IPv4 and IPv6), 4 or 6';
    case 'hostlist': return 'host names or addresses, each with an optional :port, separated by commas or blanks';
    case 'networks': return 'addresses or networks (CIDR), separated by commas or blanks';
  }
}

/** A short name of the type for --help-config and the README table. */
export function typeLabel(spec: OptionSpec): string {
  switch (spec.type) {
    case 'integer': return `integer ${spec.min}-${spec.max}`;
    case 'seconds': return `seconds ${spec.min}-${MAX_SECONDS}`;
    case 'boolean': return 'yes/no';
    case 'facility': return 'syslog facility';
    case 'priority': return 'syslog priority';
    case 'ipversion': return '0, 4 or 6';
    case 'hostlist': return 'host[:port] list';
    case 'networks': return 'CIDR list';
    default: return spec.type;
  }
}

/** Reads a non-empty value (already stripped of comment and surrounding blanks). */
export function readValue(spec: OptionSpec, raw: string): ValueReading {
  switch (spec.type) {
    case 'string':
    case 'path':
      // Kept byte for byte: quotes, semicolons and backslashes are part of the value (SPEC §1.1).
      return { ok: true, value: raw };
    case 'port':
      return readPort(raw);
    case 'integer':
      return readWholeNumber(raw, spec.min, spec.max);
    case 'seconds':
      return readWholeNumber(raw, spec.min, MAX_SECONDS);
    case 'boolean':
      return readBoolean(raw);
    case 'facility':
      return readName(raw, FACILITIES, 'a syslog facility');
    case 'priority':
      return readName(raw, PRIORITIES, 'a syslog priority');
    case 'ipversion':
      return raw === '0' || raw === '4' || raw === '6'
        ? { ok: true, value: Number(raw) }
        : { ok: false, problem: `'${raw}' is not an IP version` };
    case 'hostlist':
    case 'networks':
      // Kept as written (so `-t` shows it as written); the programs split it with lists.ts.
      try {
        if (spec.type === 'hostlist') parseHostList(raw);
        else parseNetworkList(raw);
        return { ok: true, value: raw };
      } catch (err) {
        return { ok: false, problem: (err as Error).message };
      }
  }
}

/** A config-file spelling of a value; the inverse of readValue for everything it accepts. */
export function formatValue(value: unknown): string {
  return typeof value === 'boolean' ? (value ? 'yes' : 'no') : String(value);
}

function readWholeNumber(raw: string, min: number, max: number): ValueReading {
  if (!/^-?[0-9]+$/.test(raw)) return { ok: false, problem: `'${raw}' is not a whole number` };
  const value = Number(raw);
  if (value < min || value > max) return { ok: false, problem: `'${raw}' is out of range` };
  return { ok: true, value };
}

function readPort(raw: string): ValueReading {
  const value = /^[0-9]+$/.test(raw) ? Number(raw) : servicePort(raw);
  if (value === undefined || value < 1 || value > 65535) {
    return { ok: false, problem: `'${raw}' is not a port` };
  }
  return { ok: true, value };
}

function readBoolean(raw: string): ValueReading {
  const word = raw.toLowerCase();
  if (TRUE_WORDS.has(word)) return { ok: true, value: true };
  if (FALSE_WORDS.has(word)) return { ok: true, value: false };
  // 1.2.8 took anything starting with YES as true and with NO as false ("Yessir", "NONE");
  // such files keep working, but the user hears about it.
  if (word.startsWith('yes')) {
    return { ok: true, value: true, warning: `'${raw}' read as yes, as imapproxy 1.2.8 did; write yes` };
  }
  if (word.startsWith('no')) {
    return { ok: true, value: false, warning: `'${raw}' read as no, as imapproxy 1.2.8 did; write no` };
  }
  return { ok: false, problem: `'${raw}' is not a boolean` };
}

// 1.2.8 wanted the exact C macro name and silently used a fallback otherwise ("log_local1" was
// LOG_MAIL); any case is accepted here and stored as the macro name.
function readName(raw: string, names: readonly string[], what: string): ValueReading {
  const upper = raw.toUpperCase();
  return names.includes(upper) ? { ok: true, value: upper } : { ok: false, problem: `'${raw}' is not ${what}` };
}

import { ImapProxyError } from '../errors.js';

/** Exit status of imapproxyd and pimpstat for a bad or unreadable config (sysexits.h EX_CONFIG). */
export const EX_CONFIG = 78;

/**
 * A config file that cannot be used. 1.2.8 reported these only to syslog and exited 1
 * (SPEC §1.1); these messages are meant for stderr as well and always name the file.
 * Code IMAPPROXY_ERR_CONFIG for a bad line, IMAPPROXY_ERR_CONFIG_IO for an unreadable file.
 */
export class ConfigError extends ImapProxyError {
  readonly file: string;
  /** 1-based line; undefined when the file could not be read. */
  readonly line: number | undefined;
  /** The option as spelled in the file, in canonical lowercase when it is a known one. */
  readonly option: string | undefined;
  /** The form the value should have had. */
  readonly expected: string | undefined;

  /** Prefer the factories below, which build the messages. */
  constructor(
    code: 'IMAPPROXY_ERR_CONFIG' | 'IMAPPROXY_ERR_CONFIG_IO',
    message: string,
    where: { file: string; line?: number; option?: string; expected?: string },
    cause?: unknown,
  ) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.file = where.file;
    this.line = where.line;
    this.option = where.option;
    this.expected = where.expected;
  }

  /** `<file>:<line>: option '<option>': <problem>; expected <expected>` */
  static invalid(at: { file: string; line: number; option: string; problem: string; expected: string }): ConfigError {
    const message = `${at.file}:${at.line}: option '${at.option}': ${at.problem}; expected ${at.expected}`;
    return new ConfigError('IMAPPROXY_ERR_CONFIG', message, at);
  }

  /** `<file>: cannot read config file: <reason>`, reason being the operating system's. */
  static unreadable(file: string, reason: string, cause: unknown): ConfigError {
    return new ConfigError('IMAPPROXY_ERR_CONFIG_IO', `${file}: cannot read config file: ${reason}`, { file }, cause);
  }
}

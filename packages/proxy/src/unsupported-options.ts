// Options of 1.2.8 this version does not implement yet. Starting anyway would
// silently change behaviour the operator relies on (logins with the wrong
// identity), so each one set is a start-up error. TLS options set in a way
// that cannot work are refused here too (tls/tls-config-check.ts).

import type { ProxyConfig } from '@imapproxy/shared';
import { tlsConfigProblems } from './tls/tls-config-check.js';

const NOT_YET: Array<{ option: keyof ProxyConfig; why: string }> = [
  { option: 'auth_sasl_plain_username', why: 'SASL PLAIN proxy login is not implemented yet' },
  { option: 'auth_shared_secret', why: 'SASL PLAIN proxy login is not implemented yet' },
];

/** One message per option that is set but not supported, or set in a way that cannot work (TLS). */
export function unsupportedOptions(config: ProxyConfig): string[] {
  const notYet = NOT_YET.filter(({ option }) => {
    const v = config[option];
    return v !== undefined && v !== false;
  }).map(({ option, why }) => `option '${String(option)}': ${why}; remove it or set it to no`);
  return [...notYet, ...tlsConfigProblems(config)];
}

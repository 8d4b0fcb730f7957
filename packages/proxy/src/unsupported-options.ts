// Options of 1.2.8 this version does not implement yet. Starting anyway would
// silently change behaviour the operator relies on (worst: force_tls off
// would send passwords in clear), so each one set is a start-up error.

import type { ProxyConfig } from '@imapproxy/shared';

const NOT_YET: Array<{ option: keyof ProxyConfig; why: string }> = [
  { option: 'force_tls', why: 'STARTTLS to the server is not implemented yet' },
  { option: 'tls_verify_server', why: 'TLS to the server is not implemented yet' },
  { option: 'tls_cert_file', why: 'TLS to the server is not implemented yet' },
  { option: 'auth_sasl_plain_username', why: 'SASL PLAIN proxy login is not implemented yet' },
  { option: 'auth_shared_secret', why: 'SASL PLAIN proxy login is not implemented yet' },
];

/** One message per option that is set but not supported. */
export function unsupportedOptions(config: ProxyConfig): string[] {
  return NOT_YET.filter(({ option }) => {
    const v = config[option];
    return v !== undefined && v !== false;
  }).map(({ option, why }) => `option '${String(option)}': ${why}; remove it or set it to no`);
}

// Options set in a way that cannot work are a start-up error: starting anyway
// would silently change behaviour the operator relies on (logins with the
// wrong identity). Every 1.2.8 option is implemented now (the SASL PLAIN
// proxy login last, issue 18), so only combinations are refused here.

import type { ProxyConfig } from '@imapproxy/shared';
import { saslProxyProblem } from './backend/sasl-proxy.js';
import { tlsConfigProblems } from './tls/tls-config-check.js';

/** One message per option set in a way that cannot work: a partial SASL proxy identity, TLS (tls-config-check.ts). */
export function unsupportedOptions(config: ProxyConfig): string[] {
  const sasl = saslProxyProblem(config);
  return [...(sasl ? [sasl] : []), ...tlsConfigProblems(config)];
}

// TLS options that only make sense together. A combination that cannot work
// (a client listener without a certificate, TLS required but impossible) stops
// the daemon at start; a doubtful one is logged as a warning.

import { parseHostList, type ProxyConfig } from '@imapproxy/shared';

/** Start-up errors, one line each, in unsupportedOptions' style. */
export function tlsConfigProblems(config: ProxyConfig): string[] {
  const out: string[] = [];
  const cert = config.client_tls_cert_file !== undefined;
  if (!cert && config.client_tls_key_file !== undefined) {
    out.push("option 'client_tls_key_file': set without client_tls_cert_file; set both or neither");
  }
  if (!cert && config.client_tls_listen_port !== 0) {
    out.push("option 'client_tls_listen_port': a TLS listener needs client_tls_cert_file; set it or remove this option");
  }
  if (config.client_require_tls && !cert) {
    out.push("option 'client_require_tls': no client could log in without client_tls_cert_file; set it or set this option to no");
  } else if (config.client_require_tls && !config.client_starttls && config.client_tls_listen_port === 0) {
    out.push("option 'client_require_tls': no client could log in with client_starttls no and no client_tls_listen_port; enable one of them");
  }
  if (config.client_tls_listen_port !== 0 && config.client_tls_listen_port === config.listen_port
    && (config.client_tls_listen_address ?? config.listen_address) === config.listen_address) {
    out.push("option 'client_tls_listen_port': the same port as listen_port; use another port (e.g. 993)");
  }
  return out;
}

/** Start-up warnings. */
export function tlsConfigWarnings(config: ProxyConfig): string[] {
  const out: string[] = [];
  // Each server_hostname entry may name its own port; the others use server_port.
  const ports = new Set(parseHostList(config.server_hostname).map((e) => e.port ?? config.server_port));
  const where = (port: number) => (port === config.server_port ? 'server_port is' : `a server_hostname entry has port`);
  if (ports.has(993) && !config.server_tls) {
    // The original logged a similar warning and spoke plain IMAP anyway (SPEC §3 step 5, §10).
    out.push(`${where(993)} 993 (IMAPS) but server_tls is no: plain IMAP is sent to it and logins will fail; set server_tls yes`);
  }
  if (config.server_tls && ports.has(143)) {
    out.push(`server_tls is yes but ${where(143)} 143: implicit TLS is usually on port 993`);
  }
  if (config.tls_key_file !== undefined && config.tls_cert_file === undefined) {
    out.push('tls_key_file is set without tls_cert_file: no client certificate is presented to the server');
  }
  if (config.tls_verify_server && !config.server_tls && !config.force_tls) {
    out.push('tls_verify_server is yes but neither server_tls nor force_tls is: TLS is used only with servers that advertise LOGINDISABLED');
  }
  if (config.client_tls_cert_file !== undefined && !config.client_starttls && config.client_tls_listen_port === 0) {
    out.push('client_tls_cert_file is set but client_starttls is no and there is no client_tls_listen_port: clients cannot use TLS');
  }
  return out;
}

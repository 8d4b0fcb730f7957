// Port names such as `imap`. The original handed server_port and listen_port to getaddrinfo(),
// which looks names up in /etc/services; Node's sockets take numbers only, so the same file is
// read here, once per process, when a config first names a port.
import { readFileSync } from 'node:fs';

// Minimal container images ship without /etc/services (no netbase package); the IMAP names a
// config for this proxy is likely to use still work there (ports as assigned by IANA).
const IMAP_SERVICES: ReadonlyMap<string, number> = new Map([['imap', 143], ['imap2', 143], ['imaps', 993]]);

const tables = new Map<string, ReadonlyMap<string, number>>();

/** The TCP port of a service name, or undefined when the name is unknown. */
export function servicePort(name: string, servicesFile = '/etc/services'): number | undefined {
  let table = tables.get(servicesFile);
  if (table === undefined) {
    table = readServices(servicesFile);
    tables.set(servicesFile, table);
  }
  const key = name.toLowerCase();
  return table.get(key) ?? IMAP_SERVICES.get(key);
}

// Format of services(5): `name port/protocol [alias ...] [# comment]`.
function readServices(file: string): ReadonlyMap<string, number> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return new Map();
  }
  const table = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [name, portAndProtocol, ...aliases] = line.replace(/#.*/, '').trim().split(/\s+/);
    const match = /^([0-9]+)\/tcp$/.exec(portAndProtocol ?? '');
    if (name === undefined || match === null) continue;
    for (const alias of [name, ...aliases]) {
      const key = alias.toLowerCase();
      if (!table.has(key)) table.set(key, Number(match[1]));
    }
  }
  return table;
}

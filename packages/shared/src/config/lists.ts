// Values that are lists: several backend servers, trusted networks. They stay
// strings in ProxyConfig (the config file's own spelling, shown by `-t`) and are
// checked when the file is read, so a bad entry is a file:line error at start-up,
// not a surprise at the first login; the programs split them with these functions.

import net from 'node:net';

/** One backend server of server_hostname: a host and, when given, its own port. */
export interface HostEntry {
  host: string;
  /** undefined: server_port applies. */
  port: number | undefined;
}

/** Entries are separated by commas and/or blanks. */
function entries(raw: string): string[] {
  return raw.split(/[\s,]+/).filter((e) => e.length > 0);
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

function readPortText(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** One entry: `host`, `host:port`, an IPv6 address, or `[IPv6]:port`. */
export function parseHostEntry(entry: string): HostEntry | string {
  let host = entry;
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(entry);
  if (bracketed) {
    host = bracketed[1]!;
    if (net.isIPv6(host) === false) return `'${entry}' has no IPv6 address in brackets`;
    if (bracketed[2] !== undefined) {
      port = readPortText(bracketed[2]);
      if (port === undefined) return `'${entry}' has a bad port`;
    }
    return { host, port };
  }
  if (net.isIPv6(entry)) return { host: entry, port: undefined };
  const colon = entry.lastIndexOf(':');
  if (colon >= 0) {
    host = entry.slice(0, colon);
    port = readPortText(entry.slice(colon + 1));
    if (port === undefined) return `'${entry}' has a bad port`;
  }
  if (!net.isIPv4(host) && !HOST_NAME.test(host)) return `'${host}' is not a host name or address`;
  return { host, port };
}

/** Every server of a server_hostname value, in order; throws on a bad entry. */
export function parseHostList(raw: string): HostEntry[] {
  const out: HostEntry[] = [];
  for (const e of entries(raw)) {
    const parsed = parseHostEntry(e);
    if (typeof parsed === 'string') throw new Error(parsed);
    out.push(parsed);
  }
  if (out.length === 0) throw new Error('no server given');
  return out;
}

/** One network: an address with an optional /prefix (a single address without it). */
export interface NetworkEntry {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

export function parseNetworkEntry(entry: string): NetworkEntry | string {
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const v = net.isIP(address);
  if (v === 0) return `'${entry}' is not an address or network`;
  const max = v === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const text = entry.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(text) || Number(text) > max) return `'${entry}' has a bad prefix length`;
    prefix = Number(text);
  }
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** Every network of a list value; throws on a bad entry. An empty value is an empty list. */
export function parseNetworkList(raw: string): NetworkEntry[] {
  return entries(raw).map((e) => {
    const parsed = parseNetworkEntry(e);
    if (typeof parsed === 'string') throw new Error(parsed);
    return parsed;
  });
}

/** A BlockList holding every network of the list, for `.check(address, family)`. */
export function networkBlockList(raw: string): net.BlockList {
  const list = new net.BlockList();
  for (const n of parseNetworkList(raw)) list.addSubnet(n.address, n.prefix, n.family);
  return list;
}

/**
 * An IPv4-mapped IPv6 address ("::ffff:192.0.2.1", how Node names an IPv4
 * peer of a dual-stack listener, and what a dual-stack balancer may send) as
 * the IPv4 address it is; anything else unchanged. One spelling per client
 * for logs, per-address limits and cache keys.
 */
export function unmapIpv4(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

/** Whether `address` (as Node reports a peer, IPv4-mapped IPv6 included) is in one of the networks. */
export function inNetworks(list: net.BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return list.check(mapped[1]!, 'ipv4') || list.check(address, 'ipv6');
  const v = net.isIP(address);
  if (v === 0) return false;
  return list.check(address, v === 4 ? 'ipv4' : 'ipv6');
}

// The PROXY protocol header (HAProxy's proxy-protocol.txt, v1 text and v2
// binary) that a load balancer sends before the client's own bytes, so that
// the proxy logs, limits and forwards the real client address instead of the
// balancer's. A pure function of bytes, like the IMAP framer: tested fed at
// every split. Strict: anything unexpected refuses the connection, since a
// lenient reader is how a client smuggles a forged address.

import net from 'node:net';
import { ProtocolError, unmapIpv4 } from '@imapproxy/shared';

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /**
   * The client, or null when the header carries no address to use (v1
   * UNKNOWN, v2 LOCAL, a family or transport other than TCP over IPv4/IPv6):
   * the connection's own addresses apply.
   */
  source: ProxyEndpoint | null;
  /** The address the client connected to (the balancer's front end); null as for `source`. */
  destination: ProxyEndpoint | null;
  /** Bytes the header took; what follows is the start of the client's IMAP or TLS stream. */
  length: number;
}

export class ProxyProtocolError extends ProtocolError {
  constructor(
    message: string,
    /** The peer closed the connection first (a balancer's plain TCP health check does, every few seconds). */
    readonly peerClosed = false,
  ) {
    super(message, 'IMAPPROXY_ERR_PROXY_PROTOCOL');
  }
}

/** v1: "PROXY TCP6 <39> <39> 65535 65535\r\n" is the longest line the spec allows. */
export const V1_MAX_LENGTH = 107;
/**
 * v2 headers may announce up to 16 + 65535 bytes; the addresses take at most
 * 216 and the TLVs HAProxy sends (ALPN, authority, SSL details, unique id) a
 * few hundred. More than this is refused rather than buffered.
 */
export const V2_MAX_LENGTH = 4096;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;

/**
 * The header at the start of `buf`: null while more bytes are needed. Throws
 * ProxyProtocolError as soon as the bytes seen cannot start a valid header
 * (a client speaking IMAP or TLS straight away fails at its first byte).
 */
export function parseProxyHeader(buf: Buffer): ProxyHeader | null {
  if (buf.length === 0) return null;
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf);
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf);
  throw new ProxyProtocolError('no PROXY protocol header (the connection does not start with "PROXY " or the v2 signature)');
}

function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

function parseV1(buf: Buffer): ProxyHeader | null {
  if (!startsLike(buf, V1_PREFIX)) throw new ProxyProtocolError('no PROXY protocol header (the connection does not start with "PROXY ")');
  const end = Math.min(buf.length, V1_MAX_LENGTH);
  let lf = -1;
  for (let i = 0; i < end; i++) {
    const b = buf[i]!;
    if (b === 0x0a) {
      lf = i;
      break;
    }
    if (b === 0x0d) {
      if (i + 1 < buf.length && buf[i + 1] !== 0x0a) throw new ProxyProtocolError('PROXY protocol v1 header: CR not followed by LF');
      continue;
    }
    if (b < 0x20 || b > 0x7e) throw new ProxyProtocolError(`PROXY protocol v1 header: byte 0x${b.toString(16).padStart(2, '0')} at offset ${i}`);
  }
  if (lf < 0) {
    if (buf.length >= V1_MAX_LENGTH) throw new ProxyProtocolError(`PROXY protocol v1 header longer than ${V1_MAX_LENGTH} bytes`);
    return null;
  }
  if (buf[lf - 1] !== 0x0d) throw new ProxyProtocolError('PROXY protocol v1 header: line ends in LF without CR');
  const line = buf.toString('latin1', 0, lf - 1);
  const fields = line.split(' ');
  const length = lf + 1;
  const proto = fields[1];
  // The spec: after UNKNOWN the receiver ignores the rest of the line.
  if (proto === 'UNKNOWN') return { version: 1, source: null, destination: null, length };
  if (proto !== 'TCP4' && proto !== 'TCP6') throw new ProxyProtocolError(`PROXY protocol v1 header: unknown protocol '${proto ?? ''}'`);
  if (fields.length !== 6) throw new ProxyProtocolError(`PROXY protocol v1 header: ${proto} needs 4 fields separated by single spaces, got '${line}'`);
  const [, , src, dst, sport, dport] = fields as [string, string, string, string, string, string];
  return {
    version: 1,
    source: { address: v1Address(proto, src), port: v1Port(sport) },
    destination: { address: v1Address(proto, dst), port: v1Port(dport) },
    length,
  };
}

function v1Address(proto: 'TCP4' | 'TCP6', text: string): string {
  if (proto === 'TCP4') {
    // net.isIPv4: dotted quad, no leading zeros
    if (!net.isIPv4(text)) throw new ProxyProtocolError(`PROXY protocol v1 header: '${text}' is not an IPv4 address`);
    return text;
  }
  // net.isIPv6 accepts a zone ("fe80::1%eth0"), which the header may not carry
  if (!net.isIPv6(text) || text.includes('%')) throw new ProxyProtocolError(`PROXY protocol v1 header: '${text}' is not an IPv6 address`);
  return canonicalIpv6(text);
}

function v1Port(text: string): number {
  // decimal, no sign, no leading zero
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text) || Number(text) > 65535) throw new ProxyProtocolError(`PROXY protocol v1 header: '${text}' is not a port`);
  return Number(text);
}

/**
 * One spelling per address ("2001:db8::1"), so per-address limits and cache
 * keys cannot be dodged by writing it differently; an IPv4-mapped address
 * ("::ffff:192.0.2.1", what a dual-stack balancer sends for IPv4 clients) is
 * the IPv4 address it maps, as a TCP4 header would name it.
 */
function canonicalIpv6(address: string): string {
  // (SocketAddress writes the mapped part dotted, whatever the input's spelling)
  return unmapIpv4(new net.SocketAddress({ address, family: 'ipv6' }).address);
}

function parseV2(buf: Buffer): ProxyHeader | null {
  if (!startsLike(buf, V2_SIGNATURE)) throw new ProxyProtocolError('no PROXY protocol header (wrong v2 signature)');
  if (buf.length < V2_FIXED) return null;
  const version = buf[12]! >> 4;
  const command = buf[12]! & 0x0f;
  if (version !== 2) throw new ProxyProtocolError(`PROXY protocol v2 header: version ${version}`);
  if (command > 1) throw new ProxyProtocolError(`PROXY protocol v2 header: unknown command ${command}`);
  const family = buf[13]! >> 4;
  const transport = buf[13]! & 0x0f;
  // "Receivers must drop connections presenting unexpected values here."
  if (family > 3 || transport > 2) throw new ProxyProtocolError(`PROXY protocol v2 header: unknown address family/transport 0x${buf[13]!.toString(16).padStart(2, '0')}`);
  const length = V2_FIXED + buf.readUInt16BE(14);
  if (length > V2_MAX_LENGTH) throw new ProxyProtocolError(`PROXY protocol v2 header of ${length} bytes, more than the ${V2_MAX_LENGTH} accepted`);
  if (buf.length < length) return null;
  // LOCAL: a health check of the balancer itself. UNSPEC, UNIX and DGRAM: no TCP client address to use.
  if (command === 0 || transport !== 1 || (family !== 1 && family !== 2)) return { version: 2, source: null, destination: null, length };
  const block = buf.subarray(V2_FIXED, length);
  // The address block may be followed by TLVs, which are skipped.
  if (family === 1) {
    if (block.length < 12) throw new ProxyProtocolError(`PROXY protocol v2 header: ${block.length} bytes for TCP over IPv4 addresses, 12 needed`);
    return {
      version: 2,
      source: { address: [...block.subarray(0, 4)].join('.'), port: block.readUInt16BE(8) },
      destination: { address: [...block.subarray(4, 8)].join('.'), port: block.readUInt16BE(10) },
      length,
    };
  }
  if (block.length < 36) throw new ProxyProtocolError(`PROXY protocol v2 header: ${block.length} bytes for TCP over IPv6 addresses, 36 needed`);
  return {
    version: 2,
    source: { address: ipv6Text(block.subarray(0, 16)), port: block.readUInt16BE(32) },
    destination: { address: ipv6Text(block.subarray(16, 32)), port: block.readUInt16BE(34) },
    length,
  };
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return canonicalIpv6(groups.join(':'));
}

/**
 * Accumulates the connection's first chunks until the header is complete.
 * Never holds more than the longest valid header plus one chunk.
 */
export class ProxyHeaderReader {
  private buf: Buffer = Buffer.alloc(0);

  /** The header and the bytes after it once complete, else null; throws ProxyProtocolError. */
  push(chunk: Buffer): { header: ProxyHeader; rest: Buffer } | null {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const header = parseProxyHeader(this.buf);
    if (header === null) return null;
    const rest = this.buf.subarray(header.length);
    this.buf = Buffer.alloc(0);
    return { header, rest };
  }
}

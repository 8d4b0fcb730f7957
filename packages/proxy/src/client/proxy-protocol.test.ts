// The PROXY protocol header parser, tested like the framer: each header
// (built by proxy-protocol-js, an independent implementation) followed by the
// start of an IMAP or TLS stream, whole, split in two at every offset, fed a
// byte at a time and in fixed chunks, must give the same addresses and lose
// no byte of the stream. Then everything a balancer or an attacker could
// send instead.

import test from 'ava';
import * as pp from 'proxy-protocol-js';
import { parseProxyHeader, ProxyHeaderReader, ProxyProtocolError, V1_MAX_LENGTH, V2_MAX_LENGTH, type ProxyHeader } from './proxy-protocol.js';

const CHUNK_SIZES = [1, 2, 3, 4, 5, 7, 13, 64, 128];
const STREAM = Buffer.from('a1 CAPABILITY\r\na2 LOGIN user1 pass1\r\n');

const v1 = (proto: pp.INETProtocol, src: string, dst: string, sport: number, dport: number): Buffer =>
  Buffer.from(new pp.V1ProxyProtocol(proto, new pp.Peer(src, sport), new pp.Peer(dst, dport)).build(), 'latin1');

const v2 = (command: pp.Command, transport: pp.TransportProtocol, address: pp.ProxyAddress): Buffer =>
  Buffer.from(new pp.V2ProxyProtocol(command, transport, address as pp.IPv4ProxyAddress).build());

const ipv4 = (src: number[], sport: number, dst: number[], dport: number) =>
  new pp.IPv4ProxyAddress(pp.IPv4Address.createFrom(src), sport, pp.IPv4Address.createFrom(dst), dport);

const ipv6 = (src: number[], sport: number, dst: number[], dport: number) =>
  new pp.IPv6ProxyAddress(pp.IPv6Address.createFrom(src), sport, pp.IPv6Address.createFrom(dst), dport);

/** 2001:db8::7 and 2001:db8::1:5 */
const V6_SRC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
const V6_DST = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5];

/** Appends TLVs to a built v2 header and fixes its length field. */
function withTlvs(header: Buffer, tlvs: Buffer): Buffer {
  const out = Buffer.concat([header, tlvs]);
  out.writeUInt16BE(out.readUInt16BE(14) + tlvs.length, 14);
  return out;
}

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

interface Case {
  name: string;
  header: Buffer;
  expected: Omit<ProxyHeader, 'length'>;
}

const CASES: Case[] = [
  {
    name: 'v1 TCP4',
    header: v1(pp.INETProtocol.TCP4, '203.0.113.7', '10.0.0.5', 5678, 143),
    expected: { version: 1, source: { address: '203.0.113.7', port: 5678 }, destination: { address: '10.0.0.5', port: 143 } },
  },
  {
    name: 'v1 TCP6',
    header: v1(pp.INETProtocol.TCP6, '2001:db8:0:0:0:0:0:7', '2001:db8::1:5', 65535, 0),
    expected: { version: 1, source: { address: '2001:db8::7', port: 65535 }, destination: { address: '2001:db8::1:5', port: 0 } },
  },
  {
    name: 'v1 TCP6, longest line',
    header: v1(pp.INETProtocol.TCP6, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', 65535, 65535),
    expected: {
      version: 1,
      source: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 },
      destination: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', port: 65535 },
    },
  },
  {
    name: 'v1 UNKNOWN',
    header: Buffer.from('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'),
    expected: { version: 1, source: null, destination: null },
  },
  {
    name: 'v2 PROXY TCP over IPv4',
    header: v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv4([203, 0, 113, 7], 5678, [10, 0, 0, 5], 143)),
    expected: { version: 2, source: { address: '203.0.113.7', port: 5678 }, destination: { address: '10.0.0.5', port: 143 } },
  },
  {
    name: 'v2 PROXY TCP over IPv6',
    header: v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv6(V6_SRC, 40000, V6_DST, 993)),
    expected: { version: 2, source: { address: '2001:db8::7', port: 40000 }, destination: { address: '2001:db8::1:5', port: 993 } },
  },
  {
    name: 'v2 PROXY with TLVs (ALPN, authority, unique id)',
    header: withTlvs(
      v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv4([198, 51, 100, 9], 1, [10, 0, 0, 5], 143)),
      Buffer.concat([tlv(0x01, Buffer.from('imap')), tlv(0x02, Buffer.from('mail.example.com')), tlv(0x05, Buffer.alloc(128, 0x41))]),
    ),
    expected: { version: 2, source: { address: '198.51.100.9', port: 1 }, destination: { address: '10.0.0.5', port: 143 } },
  },
  {
    name: 'v2 LOCAL (balancer health check)',
    header: v2(pp.Command.LOCAL, pp.TransportProtocol.UNSPEC, new pp.UnspecProxyAddress()),
    expected: { version: 2, source: null, destination: null },
  },
  {
    name: 'v2 LOCAL with addresses: they are ignored',
    header: v2(pp.Command.LOCAL, pp.TransportProtocol.STREAM, ipv4([203, 0, 113, 7], 5678, [10, 0, 0, 5], 143)),
    expected: { version: 2, source: null, destination: null },
  },
  {
    name: 'v2 PROXY over UDP: no TCP client, the socket address applies',
    header: v2(pp.Command.PROXY, pp.TransportProtocol.DGRAM, ipv4([203, 0, 113, 7], 5678, [10, 0, 0, 5], 143)),
    expected: { version: 2, source: null, destination: null },
  },
  {
    name: 'v2 PROXY UNSPEC',
    header: v2(pp.Command.PROXY, pp.TransportProtocol.UNSPEC, new pp.UnspecProxyAddress()),
    expected: { version: 2, source: null, destination: null },
  },
];

function expectHeader(t: import('ava').ExecutionContext, got: ProxyHeader | null, c: Case, what: string): void {
  t.deepEqual(got, { ...c.expected, length: c.header.length }, `${c.name}: ${what}`);
}

/** Feeds `chunks` to a reader; the header once complete, and every byte after it. */
function feed(chunks: Buffer[]): { header: ProxyHeader | null; rest: Buffer; completedAt: number } {
  const reader = new ProxyHeaderReader();
  let header: ProxyHeader | null = null;
  const rest: Buffer[] = [];
  let completedAt = -1;
  chunks.forEach((chunk, i) => {
    if (header) {
      rest.push(chunk);
      return;
    }
    const r = reader.push(chunk);
    if (r) {
      header = r.header;
      rest.push(r.rest);
      completedAt = i;
    }
  });
  return { header, rest: Buffer.concat(rest), completedAt };
}

function chunked(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

for (const c of CASES) {
  test(`${c.name}: whole, with the stream after it`, (t) => {
    const whole = Buffer.concat([c.header, STREAM]);
    expectHeader(t, parseProxyHeader(whole), c, 'parsed whole');
    const r = feed([whole]);
    expectHeader(t, r.header, c, 'one chunk');
    t.deepEqual(r.rest, STREAM);
  });

  test(`${c.name}: every proper prefix needs more bytes, none is refused`, (t) => {
    for (let n = 0; n < c.header.length; n++) t.is(parseProxyHeader(c.header.subarray(0, n)), null, `prefix of ${n} bytes`);
  });

  test(`${c.name}: split in two at every offset`, (t) => {
    const whole = Buffer.concat([c.header, STREAM]);
    for (let at = 0; at <= whole.length; at++) {
      const r = feed([whole.subarray(0, at), whole.subarray(at)]);
      expectHeader(t, r.header, c, `split at ${at}`);
      t.deepEqual(r.rest, STREAM, `split at ${at}`);
    }
  });

  test(`${c.name}: fed one byte at a time, complete at its last byte`, (t) => {
    const whole = Buffer.concat([c.header, STREAM]);
    const r = feed(chunked(whole, 1));
    expectHeader(t, r.header, c, 'byte by byte');
    t.is(r.completedAt, c.header.length - 1);
    t.deepEqual(r.rest, STREAM);
  });

  test(`${c.name}: fixed chunks`, (t) => {
    const whole = Buffer.concat([c.header, STREAM]);
    for (const size of CHUNK_SIZES) {
      const r = feed(chunked(whole, size));
      expectHeader(t, r.header, c, `chunks of ${size}`);
      t.deepEqual(r.rest, STREAM, `chunks of ${size}`);
    }
  });
}

test('the TLS ClientHello after a header is kept byte for byte', (t) => {
  const hello = Buffer.from('16030100f4010000f00303', 'hex');
  const header = v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv4([203, 0, 113, 7], 5678, [10, 0, 0, 5], 993));
  for (let at = 0; at <= header.length + hello.length; at++) {
    const whole = Buffer.concat([header, hello]);
    t.deepEqual(feed([whole.subarray(0, at), whole.subarray(at)]).rest, hello, `split at ${at}`);
  }
});

/** Refused as soon as `bytes` are seen, whatever follows. */
function refused(t: import('ava').ExecutionContext, bytes: Buffer | string, reason: RegExp): void {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  const err = t.throws(() => parseProxyHeader(buf), { instanceOf: ProxyProtocolError }, JSON.stringify(buf.toString('latin1')));
  t.is(err?.code, 'IMAPPROXY_ERR_PROXY_PROTOCOL');
  t.regex(err?.message ?? '', reason);
  // the same bytes a byte at a time: refused too, at the latest when the last one arrives
  const reader = new ProxyHeaderReader();
  t.throws(() => {
    for (const chunk of chunked(buf, 1)) reader.push(chunk);
  }, { instanceOf: ProxyProtocolError });
}

test('garbage: a client that speaks IMAP or TLS straight away is refused at its first byte', (t) => {
  refused(t, 'a1 LOGIN user1 pass1\r\n', /no PROXY protocol header/);
  refused(t, 'a', /no PROXY protocol header/);
  refused(t, Buffer.from([0x16, 0x03, 0x01]), /no PROXY protocol header/);
  refused(t, Buffer.from([0x00]), /no PROXY protocol header/);
  refused(t, 'GET / HTTP/1.1\r\n', /no PROXY protocol header/);
});

test('a lone "P" or "\\r" waits for more; what follows decides', (t) => {
  t.is(parseProxyHeader(Buffer.from('P')), null);
  t.is(parseProxyHeader(Buffer.from('\r\n\r\n')), null);
  refused(t, 'PR0XY TCP4', /does not start with "PROXY "/);
  refused(t, 'proxy TCP4 1.2.3.4 1.2.3.5 1 2\r\n', /no PROXY protocol header/);
  refused(t, 'PROXY\r\n', /does not start with "PROXY "/);
});

test('v1: truncated headers need more bytes; a connection that ends there never completes', (t) => {
  const header = v1(pp.INETProtocol.TCP4, '203.0.113.7', '10.0.0.5', 5678, 143);
  for (const n of [1, 6, 11, 20, header.length - 2, header.length - 1]) t.is(parseProxyHeader(header.subarray(0, n)), null);
  t.is(feed(chunked(header.subarray(0, header.length - 1), 3)).header, null);
});

test(`v1: longer than ${V1_MAX_LENGTH} bytes is refused, however it is fed`, (t) => {
  const long = `PROXY TCP6 ${'f'.repeat(60)} ${'e'.repeat(60)} 1 2\r\n`;
  refused(t, long, /longer than 107 bytes/);
  // no line end at all: refused once 107 bytes are there, not buffered for ever
  refused(t, `PROXY ${'x'.repeat(200)}`, /longer than 107 bytes/);
  t.is(parseProxyHeader(Buffer.from(`PROXY ${'x'.repeat(V1_MAX_LENGTH - 7)}`)), null);
  // exactly 107 bytes with its CRLF is accepted (UNKNOWN ignores the rest of the line)
  const exact = `PROXY UNKNOWN ${'x'.repeat(V1_MAX_LENGTH - 16)}\r\n`;
  t.is(exact.length, V1_MAX_LENGTH);
  t.is(parseProxyHeader(Buffer.from(exact))?.length, V1_MAX_LENGTH);
  refused(t, `PROXY UNKNOWN ${'x'.repeat(V1_MAX_LENGTH - 15)}\r\n`, /longer than 107 bytes/);
});

test('v1: strict fields', (t) => {
  const bad: Array<[string, RegExp]> = [
    ['PROXY TCP4 256.0.0.1 10.0.0.5 5678 143\r\n', /'256.0.0.1' is not an IPv4 address/],
    ['PROXY TCP4 203.0.113.07 10.0.0.5 5678 143\r\n', /not an IPv4 address/],
    ['PROXY TCP4 2001:db8::7 10.0.0.5 5678 143\r\n', /not an IPv4 address/],
    ['PROXY TCP6 203.0.113.7 2001:db8::1 5678 143\r\n', /not an IPv6 address/],
    ['PROXY TCP6 fe80::1%eth0 2001:db8::1 5678 143\r\n', /not an IPv6 address/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 65536 143\r\n', /'65536' is not a port/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 05678 143\r\n', /not a port/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 -1 143\r\n', /not a port/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 5678 1e3\r\n', /not a port/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 5678\r\n', /needs 4 fields/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 5678 143 9\r\n', /needs 4 fields/],
    ['PROXY TCP4  203.0.113.7 10.0.0.5 5678 143\r\n', /needs 4 fields/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 5678 143 \r\n', /needs 4 fields/],
    ['PROXY TCP5 203.0.113.7 10.0.0.5 5678 143\r\n', /unknown protocol 'TCP5'/],
    ['PROXY tcp4 203.0.113.7 10.0.0.5 5678 143\r\n', /unknown protocol/],
    ['PROXY \r\n', /unknown protocol ''/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 5678 143\n', /LF without CR/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 5678 143\rX', /CR not followed by LF/],
    ['PROXY TCP4 203.0.113.7\t10.0.0.5 5678 143\r\n', /byte 0x09/],
    ['PROXY TCP4 203.0.113.7 10.0.0.5 5678 143\x00\r\n', /byte 0x00/],
  ];
  for (const [text, reason] of bad) refused(t, text, reason);
});

test('v2: wrong signature, version, command, family', (t) => {
  const good = v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv4([203, 0, 113, 7], 5678, [10, 0, 0, 5], 143));
  for (let i = 1; i < 12; i++) {
    const bad = Buffer.from(good);
    bad[i] = bad[i]! ^ 0x20;
    refused(t, bad, /wrong v2 signature/);
  }
  const patched = (offset: number, value: number): Buffer => {
    const b = Buffer.from(good);
    b[offset] = value;
    return b;
  };
  refused(t, patched(12, 0x11), /version 1/);
  refused(t, patched(12, 0x31), /version 3/);
  refused(t, patched(12, 0x22), /unknown command 2/);
  refused(t, patched(13, 0x41), /unknown address family\/transport 0x41/);
  refused(t, patched(13, 0x13), /unknown address family\/transport 0x13/);
});

test(`v2: more than ${V2_MAX_LENGTH} bytes announced is refused at once, before they arrive`, (t) => {
  const good = v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv4([203, 0, 113, 7], 5678, [10, 0, 0, 5], 143));
  const huge = Buffer.from(good.subarray(0, 16));
  huge.writeUInt16BE(65535, 14);
  refused(t, huge, /header of 65551 bytes, more than the 4096 accepted/);
  // the largest accepted one: 4096 bytes in all
  const big = withTlvs(good, tlv(0xe0, Buffer.alloc(V2_MAX_LENGTH - good.length - 3)));
  t.is(big.length, V2_MAX_LENGTH);
  t.is(parseProxyHeader(big)?.source?.address, '203.0.113.7');
  const tooBig = withTlvs(good, tlv(0xe0, Buffer.alloc(V2_MAX_LENGTH - good.length - 2)));
  refused(t, tooBig.subarray(0, 16), /more than the 4096 accepted/);
});

test('v2: an address block too short for its family is refused', (t) => {
  const good = v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv4([203, 0, 113, 7], 5678, [10, 0, 0, 5], 143));
  const short = Buffer.from(good.subarray(0, 16 + 8));
  short.writeUInt16BE(8, 14);
  refused(t, short, /8 bytes for TCP over IPv4 addresses, 12 needed/);
  const good6 = v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv6(V6_SRC, 1, V6_DST, 2));
  const short6 = Buffer.from(good6.subarray(0, 16 + 12));
  short6.writeUInt16BE(12, 14);
  refused(t, short6, /12 bytes for TCP over IPv6 addresses, 36 needed/);
});

test('v2: truncated headers need more bytes', (t) => {
  const header = withTlvs(
    v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv6(V6_SRC, 1, V6_DST, 2)),
    tlv(0x01, Buffer.from('imap')),
  );
  for (let n = 0; n < header.length; n++) t.is(parseProxyHeader(header.subarray(0, n)), null);
  t.truthy(parseProxyHeader(header));
});

test('v2 and v1: an IPv4-mapped IPv6 source is the IPv4 address, as a TCP4 header names it (one spelling per client)', (t) => {
  const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7];
  const h = parseProxyHeader(v2(pp.Command.PROXY, pp.TransportProtocol.STREAM, ipv6(mapped, 1, V6_DST, 2)));
  t.is(h?.source?.address, '203.0.113.7');
  const v1 = parseProxyHeader(Buffer.from('PROXY TCP6 ::FFFF:cb00:7107 2001:db8::1 51234 143\r\n'));
  t.is(v1?.source?.address, '203.0.113.7');
  t.is(v1?.destination?.address, '2001:db8::1');
});

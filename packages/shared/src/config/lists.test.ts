import test from 'ava';
import { inNetworks, networkBlockList, parseHostEntry, parseHostList, parseNetworkList, unmapIpv4 } from './lists.js';
import { parseConfigText } from './load.js';

test('server_hostname lists: names, addresses, ports, IPv6 in brackets', (t) => {
  t.deepEqual(parseHostList('imap1.example.org, imap2.example.org:1143  [::1]:993 10.0.0.7 ::1'), [
    { host: 'imap1.example.org', port: undefined },
    { host: 'imap2.example.org', port: 1143 },
    { host: '::1', port: 993 },
    { host: '10.0.0.7', port: undefined },
    { host: '::1', port: undefined },
  ]);
  t.deepEqual(parseHostList('localhost'), [{ host: 'localhost', port: undefined }]);
  t.is(parseHostEntry('a..b'), "'a..b' is not a host name or address");
  t.is(parseHostEntry('host:0'), "'host:0' has a bad port");
  t.is(parseHostEntry('host:70000'), "'host:70000' has a bad port");
  t.is(parseHostEntry('[nope]:1'), "'[nope]:1' has no IPv6 address in brackets");
});

test('a bad server in the list is a config error naming file, line and option', (t) => {
  const err = t.throws(() => parseConfigText('listen_port 1143\nserver_hostname a.example, b_exa!mple:143\n', 'f.conf'));
  t.regex(err!.message, /f\.conf:2: option 'server_hostname': 'b_exa!mple' is not a host name or address/);
});

test('trusted networks: CIDR and single addresses, IPv4-mapped peers match IPv4 networks', (t) => {
  t.deepEqual(parseNetworkList('10.0.0.0/8, ::1'), [
    { address: '10.0.0.0', prefix: 8, family: 'ipv4' },
    { address: '::1', prefix: 128, family: 'ipv6' },
  ]);
  t.deepEqual(parseNetworkList(''), []);
  const list = networkBlockList('10.0.0.0/8 192.168.1.5 2001:db8::/32');
  t.true(inNetworks(list, '10.200.3.4'));
  t.true(inNetworks(list, '::ffff:10.1.1.1'));
  t.true(inNetworks(list, '192.168.1.5'));
  t.false(inNetworks(list, '192.168.1.6'));
  t.true(inNetworks(list, '2001:db8::77'));
  t.false(inNetworks(list, '2001:db9::1'));
  t.false(inNetworks(list, 'garbage'));
  t.throws(() => parseNetworkList('10.0.0.0/33'), { message: "'10.0.0.0/33' has a bad prefix length" });
});

test('unmapIpv4: one spelling per IPv4 client', (t) => {
  t.is(unmapIpv4('::ffff:192.0.2.1'), '192.0.2.1');
  t.is(unmapIpv4('::FFFF:192.0.2.1'), '192.0.2.1');
  t.is(unmapIpv4('192.0.2.1'), '192.0.2.1');
  t.is(unmapIpv4('2001:db8::1'), '2001:db8::1');
  t.is(unmapIpv4('::ffff:c000:201'), '::ffff:c000:201', 'only the dotted form Node and SocketAddress write');
});

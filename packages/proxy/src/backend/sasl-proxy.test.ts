import test from 'ava';
import { saslProxyProblem, SaslProxyIdentity } from './sasl-proxy.js';

const all = { auth_sasl_plain_username: 'proxyadmin', auth_sasl_plain_password: 'pw', auth_shared_secret: 'sec ret' };

test('the identity exists only with all three options; a partial set is a problem that names what is missing', (t) => {
  t.truthy(SaslProxyIdentity.fromConfig(all));
  t.is(SaslProxyIdentity.fromConfig({ auth_sasl_plain_username: undefined, auth_sasl_plain_password: undefined, auth_shared_secret: undefined }), null);
  t.is(saslProxyProblem(all), null);
  t.is(saslProxyProblem({ ...all, auth_shared_secret: undefined }),
    "option 'auth_sasl_plain_username': SASL PLAIN proxy login needs auth_sasl_plain_username, auth_sasl_plain_password and auth_shared_secret together; missing auth_shared_secret");
});

test('the shared secret is checked byte for byte, whatever its length; the PLAIN message is authzid NUL authcid NUL password', (t) => {
  const id = SaslProxyIdentity.fromConfig(all)!;
  t.true(id.checkSecret(Buffer.from('sec ret')));
  for (const wrong of ['sec re', 'sec ret ', '', 'SEC RET', '"sec ret"']) t.false(id.checkSecret(Buffer.from(wrong)), wrong);
  t.is(Buffer.from(id.plainResponse(Buffer.from('alice')), 'base64').toString(), 'alice\0proxyadmin\0pw');
});

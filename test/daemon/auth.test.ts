import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProto } from 'grpc-health-check';
import { TokenAuthority } from '../../daemon/src/security/auth.js';
import { join } from 'node:path';
import { startTestDaemon } from '../helpers/daemon.js';

const { status } = grpc;

t.test('every call needs a valid token', async (t) => {
  const d = await startTestDaemon(t);
  const list = (options: { token?: string; metadata?: Record<string, string> }) => d.call('ListSecrets', {}, options);
  await t.rejects(list({ token: '' }), { code: status.UNAUTHENTICATED, details: /no token/ });
  await t.rejects(list({ token: 'nonsense' }), { code: status.UNAUTHENTICATED, details: /malformed token/ });
  const [, id] = /^lbx_([0-9a-f]{16})_/.exec(d.adminToken)!;
  await t.rejects(list({ token: `lbx_${id}_${'A'.repeat(43)}` }), { code: status.UNAUTHENTICATED, details: /^invalid token$/ });
  await t.rejects(list({ token: `lbx_ffffffffffffffff_${'A'.repeat(43)}` }), { code: status.UNAUTHENTICATED, details: /^invalid token$/ }, 'unknown ids answer the same');
  t.ok(await list({ token: '', metadata: { 'x-api-key': d.adminToken } }), 'x-api-key works');
  t.ok(await list({ token: '', metadata: { authorization: `bearer ${d.adminToken}` } }), 'the Bearer scheme is case-insensitive');
  await t.rejects(d.keysCall('ListMasterKeys', {}, { token: '' }), { code: status.UNAUTHENTICATED });

  // Expired and revoked tokens (minted straight into the store; the token API is the access issue's).
  const keyring = d.daemon.keyring;
  const authority = new TokenAuthority(d.daemon.store, keyring.tokenKey);
  const expired = authority.mint({ role: 'tenant-admin', tenant: 'default', resourceGroups: [], deployment: '', deploymentResourceGroup: '', createdBy: '', description: 't', expireTime: new Date(Date.now() - 1000).toISOString() });
  await d.daemon.store.insertToken(expired.record);
  await t.rejects(list({ token: expired.token }), { code: status.UNAUTHENTICATED, details: /expired/ });
  const revoked = authority.mint({ role: 'tenant-admin', tenant: 'default', resourceGroups: [], deployment: '', deploymentResourceGroup: '', createdBy: '', description: 't', expireTime: '' });
  await d.daemon.store.insertToken({ ...revoked.record, revokeTime: new Date().toISOString() });
  await t.rejects(list({ token: revoked.token }), { code: status.UNAUTHENTICATED, details: /revoked/ });
  const otherTenant = authority.mint({ role: 'tenant-admin', tenant: 'acme', resourceGroups: [], deployment: '', deploymentResourceGroup: '', createdBy: '', description: 't', expireTime: '' });
  await d.daemon.store.insertToken(otherTenant.record);
  await t.rejects(list({ token: otherTenant.token }), { code: status.PERMISSION_DENIED, details: /tenant "acme", not "default"/ });
  t.ok(await d.call('ListSecrets', { scope: { tenant: 'acme' } }, { token: otherTenant.token }), 'its own tenant is fine');
  await t.rejects(d.keysCall('RotateMasterKey', {}, { token: otherTenant.token }), { code: status.PERMISSION_DENIED, details: /master keys/ });
  const viewer = authority.mint({ role: 'viewer', tenant: 'default', resourceGroups: [], deployment: '', deploymentResourceGroup: '', createdBy: '', description: 't', expireTime: '' });
  await d.daemon.store.insertToken(viewer.record);
  t.ok(await list({ token: viewer.token }), 'a viewer lists metadata');
  await t.rejects(d.call('GetSecret', { name: 'x', include_values: true }, { token: viewer.token }), { code: status.PERMISSION_DENIED, details: /metadata only/ });
  t.notMatch(d.logs.join('\n'), d.adminToken.slice(22), 'the token secret is never logged');
});

t.test('the bootstrap admin token is written once, mode 0600', async (t) => {
  const d = await startTestDaemon(t);
  const path = join(d.dataDir, 'admin.token');
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(statSync(join(d.dataDir, 'master.key')).mode & 0o777, 0o600);
  t.equal(statSync(join(d.dataDir, 'lockbox.db')).mode & 0o777, 0o600);
  t.equal(statSync(d.dataDir).mode & 0o777, 0o700);
  t.match(d.adminToken, /^lbx_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  t.notOk(d.logs.some((l) => l.includes(d.adminToken)), 'the token is not logged');
  await d.restart();
  t.equal(readFileSync(path, 'utf8').trim(), d.adminToken, 'a restart does not replace it');
  t.ok(await d.call('ListSecrets', {}));
});

t.test('health and reflection answer without a token', async (t) => {
  const d = await startTestDaemon(t);
  const health = grpc.loadPackageDefinition(protoLoader.loadSync(healthProto, { enums: String })) as any;
  const client = new health.grpc.health.v1.Health(d.daemon.address, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const answer = await new Promise<any>((resolve, reject) => client.Check({ service: 'lockbox.v1.SecretsService' }, (e: Error, r: unknown) => (e ? reject(e) : resolve(r))));
  t.equal(answer.status, 'SERVING');

  const reflection = grpc.loadPackageDefinition(
    protoLoader.loadSync(join(import.meta.dirname, '..', '..', 'node_modules', '@grpc', 'reflection', 'build', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto'), { keepCase: true }),
  ) as any;
  const rc = new reflection.grpc.reflection.v1.ServerReflection(d.daemon.address, grpc.credentials.createInsecure());
  t.teardown(() => rc.close());
  const stream = rc.ServerReflectionInfo();
  const listed = await new Promise<any>((resolve, reject) => {
    stream.on('data', resolve);
    stream.on('error', reject);
    stream.write({ list_services: '' });
  });
  stream.end();
  const names = listed.list_services_response.service.map((s: any) => s.name);
  t.ok(names.includes('lockbox.v1.SecretsService'), 'grpcurl can list the API');
  t.ok(names.includes('lockbox.v1.KeysService'));
});

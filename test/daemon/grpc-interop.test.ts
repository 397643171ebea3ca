/**
 * gRPC as clients that nobody here wrote see it: server reflection built by a real protobuf
 * compiler (buf, at build time), and google.rpc.ErrorInfo with the stable code plus the request
 * id in every error's trailers. The non-JS client is Debian's python3-grpcio with the C++
 * protobuf runtime (test/interop/grpc_reflection_client.py); .ci/run installs it.
 */
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { decodeErrorInfo, statusDetailsKey } from '../../shared/src/error-details.js';
import { loadServices } from '../../shared/src/proto.js';
import { answerReflection, loadDescriptorIndex } from '../../daemon/src/api/grpc-reflection.js';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';

const CANARY = 'sk-interop-canary-5b0e7d41';
const client = join(import.meta.dirname, '..', 'interop', 'grpc_reflection_client.py');
const python = ['/usr/bin/python3', 'python3'].find((bin) => spawnSync(bin, ['-c', 'import grpc, google.protobuf'], { stdio: 'ignore' }).status === 0);
// CI installs python3-grpcio (.ci/run): there a missing client is a failure, not a skip.
const skip = python || process.env.CI ? false : 'python3-grpcio / python3-protobuf not installed';

t.test('python grpcio (C++ protobuf) builds the reflected descriptors, describes and calls the API, and reads ErrorInfo', { skip }, async (t) => {
  t.ok(python, 'a python3 with grpc and protobuf is installed');
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', createRequest('interop-listed', { OPENAI_API_KEY: CANARY }, { template: 'openai', mount: { kind: 'file', path: 'x', sub_paths: { OPENAI_API_KEY: 'a/b' } } }));
  const { stdout } = await promisify(execFile)(python!, [client, d.daemon.address, d.adminToken, 'no-such-secret'], { timeout: 120_000 });
  const out = JSON.parse(stdout);
  t.equal(out.protobuf_implementation, 'cpp', 'the C++ protobuf runtime, which refused the synthesized descriptors');
  for (const service of ['SecretsService', 'KeysService', 'TokensService', 'DeploymentsService', 'AuditService', 'AgentService']) {
    t.ok(out.services.includes(`lockbox.v1.${service}`), `lists lockbox.v1.${service}`);
  }
  t.ok(out.services.includes('grpc.health.v1.Health'), 'lists the health service');
  t.same(out.files.sort(), ['grpc/reflection/v1/reflection.proto', 'grpc/reflection/v1alpha/reflection.proto', 'health/v1/health.proto', 'lockbox/v1/access.proto', 'lockbox/v1/agent.proto', 'lockbox/v1/secrets.proto']);
  t.same(out.describe.GetSecret, ['lockbox.v1.GetSecretRequest', 'lockbox.v1.Secret']);
  t.same(out.describe.ListSecrets, ['lockbox.v1.ListSecretsRequest', 'lockbox.v1.ListSecretsResponse']);
  t.equal(out.sub_paths_is_map, true, 'Mount.sub_paths is a real map (the field Go and C++ refused)');
  t.equal(out.health, 'SERVING');
  t.same(out.listed, ['interop-listed'], 'ListSecrets invoked from reflected descriptors with the token');
  t.equal(out.error.code, 'NOT_FOUND');
  t.equal(out.error.request_id, 'py-req-1', 'the caller\'s request id comes back in the trailers');
  t.same(out.error.status.error_info, [{ reason: 'SECRET_NOT_FOUND', domain: 'lockbox', metadata: { request_id: 'py-req-1' } }]);
  t.equal(out.error.status.code, grpc.status.NOT_FOUND);
  t.notOk(stdout.includes(CANARY), 'no value in what the client saw');
});

function failure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  return promise.then(
    () => {
      throw new Error('the call succeeded');
    },
    (error: grpc.ServiceError) => error,
  );
}

t.test('every gRPC error carries ErrorInfo (reason = stable code, domain lockbox) and x-request-id', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', createRequest('taken', { K: CANARY }));
  const call = (method: string, request: object, requestId: string, token?: string) => d.call(method, request, { token, metadata: { 'x-request-id': requestId } });
  const cases: Array<[string, string, () => Promise<unknown>, number, string, Record<string, string>?]> = [
    ['missing', 'req-missing', () => call('GetSecret', { name: 'nope' }, 'req-missing'), grpc.status.NOT_FOUND, 'SECRET_NOT_FOUND'],
    ['exists', 'req-exists', () => call('CreateSecret', createRequest('taken', { K: CANARY }), 'req-exists'), grpc.status.ALREADY_EXISTS, 'SECRET_EXISTS'],
    ['bad field', 'req-bad', () => call('CreateSecret', createRequest('bad name!', { K: 'v' }), 'req-bad'), grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT', { field: 'secret.name' }],
    ['bad token', 'req-auth', () => call('ListSecrets', {}, 'req-auth', 'lbx_wrong'), grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED'],
    ['stale version', 'req-cas', () => call('UpdateSecret', { name: 'taken', set: { K: Buffer.from('x') }, expected_version: 7 }, 'req-cas'), grpc.status.ABORTED, 'VERSION_CONFLICT'],
  ];
  for (const [what, requestId, pending, code, reason, extra] of cases) {
    const error = await failure(pending());
    t.equal(error.code, code, `${what}: status`);
    t.same(error.metadata.get('x-request-id'), [requestId], `${what}: request id in the trailers`);
    const [details] = error.metadata.get(statusDetailsKey) as Buffer[];
    t.ok(details, `${what}: ${statusDetailsKey} is sent`);
    t.same(decodeErrorInfo(details), { reason, domain: 'lockbox', metadata: { request_id: requestId, ...extra } }, `${what}: ErrorInfo`);
    t.notOk(details.toString('latin1').includes(CANARY), `${what}: no value in the details`);
  }
});

t.test('an unexpected error is INTERNAL with a generic ErrorInfo and a generated request id', async (t) => {
  const d = await startTestDaemon(t);
  d.daemon.secrets.list = async () => {
    throw new Error(`driver exploded near ${CANARY}`);
  };
  const error = await failure(d.call('ListSecrets', {}));
  t.equal(error.code, grpc.status.INTERNAL);
  const [requestId] = error.metadata.get('x-request-id') as string[];
  t.match(requestId, /^[0-9a-f-]{36}$/, 'a generated request id');
  const info = decodeErrorInfo(error.metadata.get(statusDetailsKey)[0] as Buffer);
  t.same(info, { reason: 'INTERNAL', domain: 'lockbox', metadata: { request_id: requestId } });
  t.notOk(JSON.stringify(error.metadata.toJSON()).includes(CANARY) || error.details.includes(CANARY), 'the detail stays in the log');
});

t.test('a successful call returns its request id in the trailers', async (t) => {
  const d = await startTestDaemon(t);
  const services = loadServices();
  const secrets = new services.SecretsService(d.daemon.address, grpc.credentials.createInsecure());
  t.teardown(() => secrets.close());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${d.adminToken}`);
  metadata.set('x-request-id', 'req-ok-1');
  const trailers = await new Promise<grpc.Metadata>((resolve, reject) => {
    const call = (secrets as any).ListSecrets({}, metadata, (error: Error | null) => error && reject(error));
    call.on('status', (status: grpc.StatusObject) => resolve(status.metadata));
  });
  t.same(trailers.get('x-request-id'), ['req-ok-1']);
});

t.test('the compiled descriptors declare exactly the services and methods the server implements', async (t) => {
  const index = loadDescriptorIndex();
  const services = Object.entries(loadServices() as unknown as Record<string, grpc.ServiceClientConstructor | object>).filter(
    (entry): entry is [string, grpc.ServiceClientConstructor] => 'service' in entry[1],
  );
  t.equal(services.length, 7); // BackupService is the seventh
  for (const [name, ctor] of services) {
    t.ok(index.services.includes(`lockbox.v1.${name}`), `${name} is in the compiled set`);
    for (const method of Object.values(ctor.service)) t.ok(index.fileOfSymbol.has(method.path.slice(1).replace('/', '.')), `${method.path} is in the compiled set`);
  }
  t.same(index.services.filter((s) => s.startsWith('lockbox.')).sort(), services.map(([s]) => `lockbox.v1.${s}`).sort());
  t.throws(() => loadDescriptorIndex('/nonexistent/descriptors.binpb'), /not readable \(ENOENT\); run `npm run build`/);
});

t.test('reflection answers by file name, refuses unknown names and extensions, and lists no extension numbers', async (t) => {
  const index = loadDescriptorIndex();
  const byName = answerReflection(index, { message_request: 'file_by_filename', file_by_filename: 'lockbox/v1/agent.proto' }) as { file_descriptor_response: { file_descriptor_proto: Uint8Array[] } };
  t.equal(byName.file_descriptor_response.file_descriptor_proto.length, 3, 'agent.proto with secrets.proto and access.proto');
  t.equal(byName.file_descriptor_response.file_descriptor_proto[0], index.files.get('lockbox/v1/agent.proto')!.bytes, 'the file first, as buf wrote it');
  const notFound = { error_response: { error_code: grpc.status.NOT_FOUND } };
  t.match(answerReflection(index, { message_request: 'file_by_filename', file_by_filename: '../etc/passwd' }), notFound);
  t.match(answerReflection(index, { message_request: 'file_containing_symbol', file_containing_symbol: 'lockbox.v1.Nope' }), notFound);
  t.match(answerReflection(index, { message_request: 'file_containing_symbol', file_containing_symbol: '.lockbox.v1.Mount' }), { file_descriptor_response: {} }, 'a leading dot is accepted');
  t.match(answerReflection(index, { message_request: 'file_containing_extension', file_containing_extension: { containing_type: 'lockbox.v1.Mount', extension_number: 100 } }), notFound);
  t.same(answerReflection(index, { message_request: 'all_extension_numbers_of_type', all_extension_numbers_of_type: 'lockbox.v1.Mount' }), { all_extension_numbers_response: { base_type_name: 'lockbox.v1.Mount', extension_number: [] } });
  t.match(answerReflection(index, { message_request: 'all_extension_numbers_of_type', all_extension_numbers_of_type: 'lockbox.v1.Nope' }), notFound);
  t.match(answerReflection(index, {}), { error_response: { error_code: grpc.status.UNIMPLEMENTED } });
});

t.test('an AgentService.Session that a bad token ends carries ErrorInfo and the session\'s request id', async (t) => {
  const d = await startTestDaemon(t);
  const agents = new (loadServices().AgentService)(d.daemon.address, grpc.credentials.createInsecure());
  t.teardown(() => agents.close());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer lbx_0000000000000000_${'A'.repeat(43)}`);
  metadata.set('x-request-id', 'session-req-1');
  const call = (agents as any).Session(metadata) as grpc.ClientDuplexStream<object, unknown>;
  call.on('data', () => {});
  call.on('error', () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.write({ id: 1, config: {} });
  const { code, metadata: trailers } = await status;
  t.equal(code, grpc.status.UNAUTHENTICATED);
  t.same(trailers.get('x-request-id'), ['session-req-1']);
  t.same(decodeErrorInfo(trailers.get(statusDetailsKey)[0] as Buffer), { reason: 'UNAUTHENTICATED', domain: 'lockbox', metadata: { request_id: 'session-req-1' } });
});

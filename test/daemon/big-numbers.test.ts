/**
 * Numbers at the boundary, on both stores: every integer the API takes is checked there
 * (400 / INVALID_ARGUMENT naming the field) or handled (a version past 2^31 is simply not found),
 * never a 500 / INTERNAL; a 64-bit integer past 2^53 is refused, never rounded; and a message
 * that does not decode is INVALID_ARGUMENT, not INTERNAL.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { restClient } from '../helpers/rest.js';

const stores: Array<[string, (t: { teardown(fn: () => unknown): void }) => Promise<Partial<{ databaseUrl: string }>>]> = [
  ['sqlite', async () => ({})],
  ['postgres', async (t) => ({ databaseUrl: await freshSchema(t) })],
];

/** A unary call with raw bytes as the request, so a test can send what no client library would. */
function rawCall(d: TestDaemon, path: string, bytes: Buffer, token: string | null = d.adminToken): Promise<Buffer> {
  const client = new grpc.Client(d.daemon.address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return new Promise<Buffer>((resolve, reject) =>
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, metadata, { deadline: Date.now() + 30_000 }, (error, answer) => {
      client.close();
      if (error) reject(error);
      else resolve(answer!);
    }),
  );
}

/** Protobuf varint of an unsigned 64-bit value. */
function varint(value: bigint): Buffer {
  const out: number[] = [];
  do {
    let byte = Number(value & 0x7fn);
    value >>= 7n;
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return Buffer.from(out);
}

for (const [store, options] of stores) {
  t.test(`REST numbers on ${store}`, async (t) => {
    const d = await startTestDaemon(t, await options(t));
    const rest = restClient(d);
    await d.call('CreateSecret', createRequest('big', { K: 'VALUE-CANARY-big' }));

    const wide = await rest('GET', '/v1/admin/secrets/big?version=2147483648');
    t.equal(wide.status, 404, 'a version past 2^31 is not found');
    t.equal(wide.json.error.code, 'VERSION_NOT_FOUND');
    t.equal((await rest('GET', `/v1/admin/secrets/big?version=${Number.MAX_SAFE_INTEGER}`)).status, 404, '2^53 - 1 is a version');
    for (const version of ['9007199254740992', '9007199254740993', '1e300', '1e400', '-1', '0', '1.5', '99999999999999999999999999']) {
      const answer = await rest('GET', `/v1/admin/secrets/big?version=${version}`);
      t.equal(answer.status, 400, `version=${version}`);
      t.match(answer.json.error.message, /^query\.version: /, `names the field for ${version}`);
    }
    const del = await rest('DELETE', '/v1/admin/secrets/big?expected_version=9007199254740993');
    t.equal(del.status, 400);
    t.match(del.json.error.message, /expected_version/);
    const patch = await rest('PATCH', '/v1/admin/secrets/big', { raw: '{"data": {"K": "x"}, "expected_version": 1e300}' });
    t.equal(patch.status, 400);
    t.match(patch.json.error.message, /^body\.expected_version: /);
    const conflict = await rest('PATCH', '/v1/admin/secrets/big', { body: { data: { K: 'x' }, expected_version: 2 ** 31 } });
    t.equal(conflict.status, 409, 'a version past 2^31 in a compare-and-set is a conflict');
    for (const query of ['limit=1e400', 'limit=4294967296']) t.equal((await rest('GET', `/v1/admin/secrets?${query}`)).status, 400, query);
    const skip = await rest('GET', '/v2/admin/secrets?$skip=1e300', { headers: { 'ai-resource-group': 'g' } });
    t.equal(skip.status, 400);
    t.match(skip.json.error.message, /\$skip/);
    t.notOk(d.logs.some((l) => l.includes('internal error')), 'nothing internal');
    t.notOk(d.logs.some((l) => l.includes('VALUE-CANARY')), 'no value logged');
  });

  t.test(`gRPC numbers on ${store}`, async (t) => {
    const d = await startTestDaemon(t, await options(t));
    await d.call('CreateSecret', createRequest('big', { K: 'v' }));
    await t.rejects(d.call('GetSecret', { name: 'big', version: 2 ** 31 }), { code: status.NOT_FOUND }, 'GetSecret 2^31');
    await t.rejects(d.call('GetSecret', { name: 'big', version: Number.MAX_SAFE_INTEGER }), { code: status.NOT_FOUND }, 'GetSecret 2^53 - 1');
    await t.rejects(d.call('RestoreVersion', { name: 'big', version: 2 ** 31 }), { code: status.NOT_FOUND }, 'RestoreVersion 2^31');
    await t.rejects(d.call('RestoreVersion', { name: 'big', version: 2 ** 40, expected_version: 2 ** 40 }), { code: status.ABORTED });
    await t.rejects(d.call('UpdateSecret', { name: 'big', set: { K: Buffer.from('x') }, expected_version: 2 ** 31 }), { code: status.ABORTED });
    await t.rejects(d.call('DeleteSecret', { name: 'big', expected_version: 2 ** 33 }), { code: status.ABORTED });
    // Past 2^53 the number would be rounded: refused, naming the field, whatever the method.
    for (const [method, request, field] of [
      ['GetSecret', { name: 'big', version: '9007199254740993' }, /^version: 9007199254740993 is out of range/],
      ['RestoreVersion', { name: 'big', version: '9223372036854775807' }, /^version: /],
      ['UpdateSecret', { name: 'big', set: { K: Buffer.from('x') }, expected_version: '-9223372036854775808' }, /^expected_version: /],
      ['BatchSecrets', { items: [{ delete: { name: 'big', expected_version: '9007199254740992' } }] }, /^items\[0\]\.delete\.expected_version: /],
    ] as const)
      await t.rejects(d.call(method, request), { code: status.INVALID_ARGUMENT, details: field }, `${method} ${JSON.stringify(request).slice(0, 60)}`);
    t.equal((await d.call('GetSecret', { name: 'big' })).version, 1, 'nothing applied');

    const audit = (request: object) => d.rpc('AuditService', 'ListAudit', request);
    t.same((await audit({ after_seq: Number.MAX_SAFE_INTEGER })).entries ?? [], [], 'after_seq 2^53 - 1 lists nothing');
    for (const after of ['9223372036854775807', '-9223372036854775808', '9007199254740993'])
      await t.rejects(audit({ after_seq: after }), { code: status.INVALID_ARGUMENT, details: /^after_seq: / }, `after_seq ${after}`);
    // after_seq = 2^63 and 2^64 - 1 on the wire (field 2, varint): what no int64 client sends.
    for (const value of [2n ** 63n, 2n ** 64n - 1n])
      await t.rejects(rawCall(d, '/lockbox.v1.AuditService/ListAudit', Buffer.concat([Buffer.from([0x10]), varint(value)])), { code: status.INVALID_ARGUMENT, details: /^after_seq: / });
    await t.rejects(d.rpc('TokensService', 'CreateToken', { role: 'viewer', ttl_seconds: Number.MAX_SAFE_INTEGER }), { code: status.INVALID_ARGUMENT, details: /ttl_seconds/ });
    t.notOk(d.logs.some((l) => l.includes('internal error')), 'nothing internal');
  });
}

t.test('a malformed protobuf message is INVALID_ARGUMENT, after the token is checked', async (t) => {
  const d = await startTestDaemon(t);
  const garbage = [
    Buffer.from([0x0a, 0xff]), // field 1 whose length never ends
    Buffer.from([0x0a]), // a tag and no value
    Buffer.from([0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // a varint of 11 bytes
    Buffer.from([0x7f]), // field 15, wire type 7
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), // a tag that never ends
  ];
  for (const [i, bytes] of garbage.entries()) {
    for (const path of ['/lockbox.v1.SecretsService/GetSecret', '/lockbox.v1.SecretsService/CreateSecret', '/lockbox.v1.AuditService/ListAudit', '/lockbox.v1.AgentService/FetchSecrets']) {
      await t.rejects(rawCall(d, path, bytes), { code: status.INVALID_ARGUMENT, details: /^request: is not a valid protobuf message for / }, `${path} #${i}`);
      await t.rejects(rawCall(d, path, bytes, null), { code: status.UNAUTHENTICATED }, `${path} #${i} without a token`);
    }
  }
  t.ok(d.logs.some((l) => l.includes('"error_code":"MALFORMED_REQUEST"')), 'the refusal is logged as a call');
  t.notOk(d.logs.some((l) => l.includes('internal error')), 'nothing internal');
});

t.test('a malformed message on the agent session stream is INVALID_ARGUMENT', async (t) => {
  const d = await startTestDaemon(t);
  const client = new grpc.Client(d.daemon.address, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${d.adminToken}`);
  const stream = client.makeBidiStreamRequest('/lockbox.v1.AgentService/Session', (b: Buffer) => b, (b: Buffer) => b, metadata, { deadline: Date.now() + 30_000 });
  const ended = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  stream.on('data', () => {});
  stream.on('error', () => {});
  stream.write(Buffer.from([0x0a, 0xff, 0xff]));
  const answer = await ended;
  t.equal(answer.code, status.INVALID_ARGUMENT);
  t.match(answer.details, /is not a valid protobuf message for Session/);
});

/**
 * A bounded, seeded fuzz of both doors (FUZZ_SEED to replay a run): 2,400 REST requests and 1,200
 * gRPC messages built from valid shapes, mutated and mixed with garbage, against one daemon.
 * Asserted: no 5xx and no INTERNAL/UNKNOWN, the daemon still answers, no log line holds a value
 * sent in a body, and no answer holds the value of a secret the fuzzing token may not read.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { request as httpRequest, Agent } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { loadPackageDefinition } from '../../shared/src/proto.js';

const seed = Number(process.env.FUZZ_SEED ?? 11011);
/** mulberry32: the same seed, the same requests. */
function prng(start: number) {
  let a = start >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
const VAULT = `VAULT-CANARY-${randomBytes(6).toString('hex')}`;
const SENT = 'SENT-VALUE-CANARY';

const hostile = ['', 'a', 'fuzz-1', 'fuzz-2', '..', '../etc', '%2e%2e', 'a'.repeat(300), 'constructor', '__proto__', 'toString', 'x y', '\u0000', 'ü', '*', '-', 'A_B', 'fuzz.3'];
const numbers = [0, -1, 1, 2, 2 ** 31, 2 ** 53, 2 ** 63, 1e300, 1.5, NaN, -0, '1', '9007199254740993', '1e400', 'Infinity', null, true, [], {}];
// Values (the SENT marker) appear only where the shapes put data; a mutation moves names and
// numbers around, never a value into a name, so an error quoting a name quotes no value.
const anyValue = (): unknown => pick([() => pick(hostile), () => pick(numbers), () => ({ [pick(hostile)]: pick(hostile) }), () => [pick(hostile), pick(numbers)], () => undefined])();

function mutate(value: unknown, depth = 0): unknown {
  if (depth > 3 || random() < 0.15) return anyValue();
  if (Array.isArray(value)) return value.map((v) => mutate(v, depth + 1)).concat(random() < 0.2 ? [anyValue()] : []);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (random() > 0.1) out[random() < 0.05 ? pick(hostile) : k] = mutate(v, depth + 1);
    if (random() < 0.1) out[pick(hostile)] = anyValue();
    return out;
  }
  return random() < 0.3 ? anyValue() : value;
}

const shapes = [
  { name: 'fuzz-1', value: `${SENT}-v`, provider_slug: 'openai' },
  { name: 'fuzz-2', data: { K: SENT, B: `${SENT}-b` }, labels: { team: 'x' }, mount: { kind: 'env', path: 'demo', format: 'dotenv' }, type: 'opaque' },
  { data: { K: null, N: SENT }, labels: { team: null }, replace: false, expected_version: 1 },
  { items: [{ mode: 'create', name: 'fuzz-3', data: { K: SENT } }, { mode: 'update', name: 'fuzz-1', data: { K: SENT } }, { mode: 'delete', name: 'fuzz-2' }] },
  { name: 'fuzz-4', data: { K: Buffer.from(SENT).toString('base64') }, labels: [{ key: 'a', value: 'b' }] },
];
const paths = ['/v1/admin/secrets', '/v1/admin/secrets:batch', '/v1/admin/secrets/{n}', '/v2/admin/secrets', '/v2/admin/secrets/{n}', '/secrets', '/v1/admin/secrets/{n}/x', '/openapi.json', '/readyz', '/{n}'];
const queries = ['version', 'reveal', 'limit', 'cursor', 'force', 'expected_version', 'provider_slug', 'label', '$top', '$skip', 'type', pick(hostile)];

t.test(`fuzz the REST gateway and the gRPC API (seed ${seed})`, async (t) => {
  const d = await startTestDaemon(t, { httpBodyLimit: 64 * 1024 });
  await d.call('CreateSecret', { scope: { resource_group: 'vault' }, ...createRequest('vault', { K: VAULT }) });
  const token = (await d.rpc('TokensService', 'CreateToken', { role: 'rg-admin', resource_groups: ['fuzz'] })).token as string;
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());

  const restCall = (method: string, path: string, headers: Record<string, string>, body?: Buffer) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const request = httpRequest(`${d.daemon.httpUrl}${path}`, { method, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }, agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: response.statusCode!, text: Buffer.concat(chunks).toString() }));
      });
      request.on('error', reject);
      request.end(body);
    });

  const failures: string[] = [];
  let restCount = 0;
  const restOne = async () => {
    const method = pick(['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'GET']);
    let path = pick(paths).replace('{n}', encodeURIComponent(pick(hostile)) || 'x');
    const query = Array.from({ length: Math.floor(random() * 3) }, () => `${encodeURIComponent(pick(queries))}=${encodeURIComponent(String(pick([...numbers, ...hostile])))}`).join('&');
    if (query) path += `?${query}`;
    const headers: Record<string, string> = { authorization: `Bearer ${pick([token, token, token, 'garbage', ''])}` };
    if (random() < 0.5) headers['ai-resource-group'] = pick(['fuzz', 'fuzz', 'vault', '*', '', 'a b', 'x'.repeat(70)]);
    if (random() < 0.3) headers['ai-tenant-scope'] = pick(['true', 'false', 'yes']);
    if (random() < 0.2) headers['idempotency-key'] = pick(['k1', 'k2', 'a b', 'x'.repeat(200)]);
    let body: Buffer | undefined;
    if (method !== 'GET' || random() < 0.1) {
      headers['content-type'] = pick(['application/json', 'application/json', 'application/json', 'text/plain', 'application/json; charset=utf-8']);
      const kind = random();
      body = kind < 0.8 ? Buffer.from(JSON.stringify(mutate(pick(shapes))) ?? 'null') : kind < 0.9 ? randomBytesSeeded(Math.floor(random() * 300)) : Buffer.from(JSON.stringify(pick(shapes)).slice(0, Math.floor(random() * 40)));
    }
    const answer = await restCall(method, path, headers, body);
    restCount++;
    if (answer.status >= 500 && !(path.startsWith('/readyz') && answer.status === 503)) failures.push(`REST ${method} ${path} → ${answer.status} ${answer.text.slice(0, 200)}`);
    if (answer.text.includes(VAULT)) failures.push(`REST ${method} ${path} answered the vault's value`);
    if (answer.status >= 400 && answer.text.includes(SENT)) failures.push(`REST ${method} ${path} repeated a sent value in an error`);
  };

  function randomBytesSeeded(length: number): Buffer {
    return Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
  }

  // REST: 2,400 requests, 8 at a time.
  for (let round = 0; round < 300; round++) await Promise.all(Array.from({ length: 8 }, restOne));

  // gRPC: 1,200 messages to every unary method: valid encodings of mutated requests, and those
  // bytes cut, flipped or replaced by noise.
  const definition = loadPackageDefinition();
  const methods = Object.entries(definition).flatMap(([service, methods]) =>
    service.startsWith('lockbox.v1.') && !('format' in methods)
      ? Object.entries(methods as grpc.ServiceDefinition).filter(([, m]) => !m.requestStream).map(([, m]) => m)
      : [],
  );
  const client = new grpc.Client(d.daemon.address, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  // Bytes that are cut or flipped may turn a data field into a name: those carry no SENT marker.
  const grpcShapes = (SENT: string) => [
    { scope: { tenant: '', resource_group: 'fuzz' }, name: 'fuzz-1', version: 1, include_values: true },
    { scope: { resource_group: 'fuzz' }, secret: { name: 'fuzz-1', data: { K: Buffer.from(SENT) }, labels: { a: 'b' }, mount: { kind: 'file', path: 'p', sub_paths: { K: 's' } } } },
    { scope: { resource_group: 'fuzz' }, name: 'fuzz-1', set: { K: Buffer.from(SENT) }, remove: ['B'], expected_version: 2 },
    { scope: { resource_group: 'fuzz' }, items: [{ create: { name: 'fuzz-5', data: { K: Buffer.from(SENT) } } }, { delete: { name: 'fuzz-1' } }] },
    { scope: { resource_group: 'fuzz' }, limit: 5, cursor: 'x', labels: ['a=b'] },
    { tenant: 'default', after_seq: 3, limit: 10 },
    { role: 'reader', resource_groups: ['fuzz'], ttl_seconds: 60 },
  ];
  let grpcCount = 0;
  const grpcOne = async () => {
    const method = pick(methods);
    const how = random();
    let bytes: Buffer;
    try {
      bytes = method.requestSerialize(mutate(pick(grpcShapes(how < 0.5 ? 'ALTERED' : SENT))));
    } catch {
      bytes = randomBytesSeeded(20);
    }
    if (how < 0.2) bytes = bytes.subarray(0, Math.floor(random() * bytes.length));
    else if (how < 0.4 && bytes.length) {
      bytes = Buffer.from(bytes);
      bytes[Math.floor(random() * bytes.length)] ^= 1 << Math.floor(random() * 8);
    } else if (how < 0.5) bytes = randomBytesSeeded(Math.floor(random() * 64));
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${random() < 0.9 ? token : 'garbage'}`);
    const code = await new Promise<{ code: number; details: string }>((resolve) =>
      client.makeUnaryRequest(method.path, (b: Buffer) => b, (b: Buffer) => b, bytes, metadata, { deadline: Date.now() + 30_000 }, (error, answer) =>
        resolve(error ? { code: error.code, details: error.details } : { code: 0, details: answer!.toString('latin1') }),
      ),
    );
    grpcCount++;
    if (code.code === grpc.status.INTERNAL || code.code === grpc.status.UNKNOWN) failures.push(`gRPC ${method.path} → ${grpc.status[code.code]} ${code.details}`);
    if (code.details.includes(VAULT)) failures.push(`gRPC ${method.path} answered the vault's value`);
    if (code.code !== 0 && code.details.includes(SENT)) failures.push(`gRPC ${method.path} repeated a sent value in an error`);
  };
  for (let round = 0; round < 150; round++) await Promise.all(Array.from({ length: 8 }, grpcOne));

  t.equal(restCount, 2400, 'REST requests sent');
  t.equal(grpcCount, 1200, 'gRPC messages sent');
  t.same(failures.slice(0, 20), [], 'no 5xx, no INTERNAL, no value where it must not be');
  t.equal((await fetch(`${d.daemon.httpUrl}/healthz`)).status, 200, 'the daemon still answers');
  t.equal((await d.call('GetSecret', { scope: { resource_group: 'vault' }, name: 'vault', include_values: true })).data.K.toString(), VAULT, 'the vault is intact');
  const leaked = d.logs.filter((l) => l.includes(SENT) || l.includes(VAULT));
  t.same(leaked.slice(0, 5), [], 'no log line holds a value');
});

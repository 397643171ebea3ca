/**
 * GetSecret (with values, 1 KiB) at 64 calls in flight against two raw grpc-js baselines measured
 * in the same run, each server in its own process:
 * - echo (same messages): a bare grpc-js server answering GetSecret with a fixed Secret: the same
 *   request, metadata and protobuf encoding and decoding on both sides, no auth, storage or crypto. The target
 *   (≥ 0.8×) is against this one: it isolates what lockbox adds.
 * - echo (bytes): opaque bytes of the response's size, no protobuf at all; shown for reference.
 * Runs RUNS rounds (default 5), alternating, and reports medians.
 *   npm run bench:get
 */
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '../shared/src/proto.js';
import { closedLoop, echoService, fmt, median, startServer, type LoadResult } from './harness.js';

const IN_FLIGHT = 64;
const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 3);
const RUNS = Number(process.env.RUNS ?? 5);

const services = loadServices();
const daemon = await startServer('daemon');
const echo = await startServer('echo');
const secretsClient = new services.SecretsService(daemon.info.addr, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
md.set('authorization', `Bearer ${daemon.info.token}`);
const unary = (client: grpc.Client, method: string, request: unknown, metadata = new grpc.Metadata()) =>
  new Promise<any>((resolve, reject) => (client as any)[method](request, metadata, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));

await unary(secretsClient, 'CreateSecret', { secret: { name: 'bench', template: 'openai', data: { OPENAI_API_KEY: Buffer.alloc(1024, 'k') } } }, md);
const sample = await unary(secretsClient, 'GetSecret', { name: 'bench', include_values: true }, md);
// The echo carries a message as large as the Get response, both ways.
const responseBytes = (services.SecretsService.service.GetSecret.responseSerialize(sample) as Buffer).length;
const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');
const echoClient = new EchoClient(echo.info.addr, grpc.credentials.createInsecure());
const payload = Buffer.alloc(responseBytes, 1);

const echoSecrets = new services.SecretsService(echo.info.addr, grpc.credentials.createInsecure());

const gets: LoadResult[] = [];
const echoes: LoadResult[] = [];
const byteEchoes: LoadResult[] = [];
for (let run = 1; run <= RUNS; run++) {
  const b = await closedLoop(() => unary(echoClient, 'Echo', payload), IN_FLIGHT, SECONDS * 1000);
  const e = await closedLoop(() => unary(echoSecrets, 'GetSecret', { name: 'bench', include_values: true }, md), IN_FLIGHT, SECONDS * 1000);
  const g = await closedLoop(() => unary(secretsClient, 'GetSecret', { name: 'bench', include_values: true }, md), IN_FLIGHT, SECONDS * 1000);
  byteEchoes.push(b);
  echoes.push(e);
  gets.push(g);
  console.log(`run ${run}: get ${fmt(g)} | echo ${fmt(e)} | bytes ${fmt(b)} | ratio ${(g.perSecond / e.perSecond).toFixed(2)}`);
}
const line = (label: string, rs: LoadResult[]) =>
  `  ${label.padEnd(26)}: ${Math.round(median(rs.map((r) => r.perSecond)))} calls/s  p50 ${median(rs.map((r) => r.p50ms)).toFixed(2)} ms  p99 ${median(rs.map((r) => r.p99ms)).toFixed(2)} ms`;
const g = median(gets.map((r) => r.perSecond));
console.log(`\nGetSecret with values (${responseBytes}-byte response), ${IN_FLIGHT} in flight, median of ${RUNS} × ${SECONDS}s:`);
console.log(line('lockboxd GetSecret', gets));
console.log(line('grpc-js echo, same messages', echoes) + '  (baseline)');
console.log(line('grpc-js echo, raw bytes', byteEchoes) + '  (reference)');
console.log(`  ratio: ${(g / median(echoes.map((r) => r.perSecond))).toFixed(2)}× the same-message echo (target ≥ 0.80×); ${(g / median(byteEchoes.map((r) => r.perSecond))).toFixed(2)}× the raw-bytes echo`);
secretsClient.close();
echoSecrets.close();
echoClient.close();
await daemon.stop();
await echo.stop();

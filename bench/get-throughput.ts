/**
 * GetSecret with values (1 KiB) at 64 calls in flight, against raw grpc-js baselines measured in
 * the same run, each server in its own process:
 * - echo (same messages): a bare grpc-js server answering GetSecret with a fixed Secret: the same
 *   request, metadata and protobuf encoding and decoding on both sides, no auth, storage, crypto or
 *   audit. The target (≥ 0.8×) is against this one: it isolates what lockbox adds.
 * - echo (bytes): opaque bytes of the response's size, no protobuf at all; shown for reference.
 * lockboxd runs twice: --audit-reads async (the read's audit record is group-committed without
 * holding the answer) and durable (the default: the value leaves only after its read is on disk,
 * which adds one group-commit fsync to every read).
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
const unary = (client: grpc.Client, method: string, request: unknown, metadata = new grpc.Metadata()) =>
  new Promise<any>((resolve, reject) => (client as any)[method](request, metadata, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));

async function lockboxd(mode: string) {
  const server = await startServer('daemon', mode);
  const client = new services.SecretsService(server.info.addr, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${server.info.token}`);
  await unary(client, 'CreateSecret', { secret: { name: 'bench', template: 'openai', data: { OPENAI_API_KEY: Buffer.alloc(1024, 'k') } } }, md);
  return { server, client, md, get: () => unary(client, 'GetSecret', { name: 'bench', include_values: true }, md) };
}

const asyncAudit = await lockboxd('async');
const durableAudit = await lockboxd('durable');
const echo = await startServer('echo');
const md = asyncAudit.md;
const sample = await asyncAudit.get();
// The byte echo carries a message as large as the Get response, both ways.
const responseBytes = (services.SecretsService.service.GetSecret.responseSerialize(sample) as Buffer).length;
const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');
const echoClient = new EchoClient(echo.info.addr, grpc.credentials.createInsecure());
const payload = Buffer.alloc(responseBytes, 1);
const echoSecrets = new services.SecretsService(echo.info.addr, grpc.credentials.createInsecure());

const results: Record<string, LoadResult[]> = { async: [], durable: [], echo: [], bytes: [] };
for (let run = 1; run <= RUNS; run++) {
  results.bytes.push(await closedLoop(() => unary(echoClient, 'Echo', payload), IN_FLIGHT, SECONDS * 1000));
  results.echo.push(await closedLoop(() => unary(echoSecrets, 'GetSecret', { name: 'bench', include_values: true }, md), IN_FLIGHT, SECONDS * 1000));
  results.async.push(await closedLoop(asyncAudit.get, IN_FLIGHT, SECONDS * 1000));
  results.durable.push(await closedLoop(durableAudit.get, IN_FLIGHT, SECONDS * 1000));
  const last = (k: string) => results[k][results[k].length - 1];
  console.log(`run ${run}: async ${fmt(last('async'))} | durable ${fmt(last('durable'))} | echo ${fmt(last('echo'))} | bytes ${fmt(last('bytes'))}`);
}
const rate = (k: string) => median(results[k].map((r) => r.perSecond));
const line = (label: string, k: string) =>
  `  ${label.padEnd(38)}: ${Math.round(rate(k))} calls/s  p50 ${median(results[k].map((r) => r.p50ms)).toFixed(2)} ms  p99 ${median(results[k].map((r) => r.p99ms)).toFixed(2)} ms`;
console.log(`\nGetSecret with values (${responseBytes}-byte response), ${IN_FLIGHT} in flight, median of ${RUNS} × ${SECONDS}s:`);
console.log(line('lockboxd, --audit-reads async', 'async') + `  ${(rate('async') / rate('echo')).toFixed(2)}× echo (target ≥ 0.80×)`);
console.log(line('lockboxd, --audit-reads durable', 'durable') + `  ${(rate('durable') / rate('echo')).toFixed(2)}× echo`);
console.log(line('grpc-js echo, same messages (baseline)', 'echo'));
console.log(line('grpc-js echo, raw bytes (reference)', 'bytes'));
for (const x of [asyncAudit, durableAudit]) {
  x.client.close();
  await x.server.stop();
}
echoSecrets.close();
echoClient.close();
await echo.stop();

/**
 * Prometheus metrics of lockboxd and lockbox-agent: scraped over HTTP, parsed by an independent
 * parser, and seen to move after a rotation. No secret name or value in them.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { createRequest, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { scrapeMetrics } from '../helpers/prometheus.js';
import { session } from '../helpers/session.js';
import { agentBin, agentEnv, agentFlags, repoRoot } from '../helpers/spawn.js';
import { until } from '../helpers/wait.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const scope = { tenant: 'default', resource_group: '' };

t.test('lockboxd serves /metrics on the REST port without a token, and the values move with a rotation', async (t) => {
  const d = await startTestDaemon(t);
  const url = `${d.daemon.httpUrl}/metrics`;
  const first = await scrapeMetrics(url);
  t.equal(first.value('lockbox_build_info', { program: 'lockboxd', version }), 1, 'build info with the package version');
  t.ok(first.families.has('process_cpu_user_seconds_total'), 'process metrics');
  for (const name of ['lockbox_requests_total', 'lockbox_request_duration_seconds', 'lockbox_store_commit_duration_seconds', 'lockbox_store_commit_batch_size', 'lockbox_outbox_depth', 'lockbox_outbox_publish_lag_seconds', 'lockbox_agent_sessions', 'lockbox_agents', 'lockbox_audit_write_lag_seconds'])
    t.ok(first.families.has(name), name);
  t.equal(first.families.get('lockbox_request_duration_seconds')!.type, 'HISTOGRAM');

  const canary = 'sk-canary-metrics-7f3a';
  await d.call('CreateSecret', createRequest('openai-canary-name', { OPENAI_API_KEY: canary }, { template: 'openai' }));
  const before = await scrapeMetrics(url);
  await d.call('UpdateSecret', { name: 'openai-canary-name', set: { OPENAI_API_KEY: Buffer.from(`${canary}-2`) } }); // the rotation
  const rest = await fetch(`${d.daemon.httpUrl}/v1/admin/secrets`, { headers: { authorization: `Bearer ${d.adminToken}` } });
  t.equal(rest.status, 200);
  const after = await scrapeMetrics(url);

  const updates = (s: typeof after) => s.value('lockbox_requests_total', { transport: 'grpc', method: 'UpdateSecret', code: 'OK' });
  t.equal(updates(before), 0);
  t.equal(updates(after), 1, 'the rotation counted by method and code');
  t.equal(after.histogramCount('lockbox_request_duration_seconds', 'transport="grpc",method="UpdateSecret"'), 1, 'and timed');
  t.equal(after.value('lockbox_requests_total', { transport: 'http', method: 'GET /v1/admin/secrets', code: '200' }), 1, 'REST by route, not by path');
  t.ok(after.value('lockbox_store_commit_duration_seconds') > before.value('lockbox_store_commit_duration_seconds'), 'store commits timed');
  t.ok(after.value('lockbox_store_commit_batch_size') > before.value('lockbox_store_commit_batch_size'), 'and their batch sizes');
  t.ok(after.value('lockbox_audit_write_lag_seconds') > before.value('lockbox_audit_write_lag_seconds'), 'audit writes');
  t.equal(after.value('lockbox_outbox_depth'), before.value('lockbox_outbox_depth') + 1, 'without NATS the rotation\'s notice waits in the outbox');
  t.notMatch(after.text, /canary/, 'no secret name or value in the metrics');
  t.equal(rest.headers.get('x-request-id') !== null, true);
});

t.test('rollout convergence: a rotation pushed to an agent session is pending until its ACK, then observed; a NACK shows as nacked', async (t) => {
  const d = await startTestDaemon(t);
  const url = `${d.daemon.httpUrl}/metrics`;
  await d.call('CreateSecret', { scope, ...createRequest('api', { API_KEY: 'k1' }, { mount: { path: 'files' } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['api'] } });
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });
  const s = session(t, d, token);
  s.call.write({ id: 1, resync: { agent_id: 'pod-1', held: [], resync_interval_seconds: 60 } });
  await s.next((r) => Number(r.id) === 1);
  const converged = (m: Awaited<ReturnType<typeof scrapeMetrics>>) => m.value('lockbox_rollout_convergence_seconds');
  const pending = (m: Awaited<ReturnType<typeof scrapeMetrics>>, state: string) => m.value('lockbox_rollouts_pending', { state });
  const start = await scrapeMetrics(url);
  t.equal(converged(start), 0, 'a resync answer is no rollout');
  t.equal(pending(start, 'waiting'), 0);

  const rotate = async (value: string) => {
    const mark = s.responses.length;
    await d.call('UpdateSecret', { scope, name: 'api', set: { API_KEY: Buffer.from(value) } });
    return (await s.next((r) => r.push?.secrets?.length, mark)).push;
  };
  const v2 = await rotate('k2');
  const waiting = await scrapeMetrics(url);
  t.equal(pending(waiting, 'waiting'), 1, 'pushed, not ACKed yet');
  t.equal(converged(waiting), 0);
  const applied = (p: any, version: number) => [{ name: 'api', uid: p.secrets[0].secret.uid, version }];
  s.call.write({ id: 2, ack: { nonce: v2.nonce, applied: applied(v2, 2) } });
  await until('the ACK observed', async () => converged(await scrapeMetrics(url)) === 1);
  const acked = await scrapeMetrics(url);
  t.equal(pending(acked, 'waiting'), 0, 'nothing pending once every session ACKed');
  const seconds = Number(acked.families.get('lockbox_rollout_convergence_seconds')!.metrics[0].sum);
  t.ok(seconds >= 0 && seconds < 60, `commit to ACK in seconds: ${seconds}`);

  const v3 = await rotate('k3');
  s.call.write({ id: 3, ack: { nonce: v3.nonce, applied: applied(v3, 2), nack_reason: 'mount "files" not written: ENOSPC' } });
  await until('the NACK seen', async () => pending(await scrapeMetrics(url), 'nacked') === 1);
  t.equal(converged(await scrapeMetrics(url)), 1, 'a NACK does not converge');
  s.call.write({ id: 4, ack: { nonce: v3.nonce, applied: applied(v3, 3) } });
  await until('the retry ACKed', async () => converged(await scrapeMetrics(url)) === 2);
  const done = await scrapeMetrics(url);
  t.equal(pending(done, 'nacked') + pending(done, 'waiting'), 0);
  t.notMatch(done.text, /k1|k2|k3|API_KEY|"api"/, 'no secret name or value in the metrics');
});

t.test('--metrics-addr: an address of its own, or none', async (t) => {
  const own = await startTestDaemon(t, { metricsAddr: '127.0.0.1:0' });
  t.match(own.daemon.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  const scraped = await scrapeMetrics(`${own.daemon.metricsUrl}/metrics`);
  t.equal(scraped.value('lockbox_build_info', { program: 'lockboxd' }), 1);
  t.equal((await fetch(`${own.daemon.metricsUrl}/other`)).status, 404);
  t.equal((await fetch(`${own.daemon.httpUrl}/metrics`)).status, 404, 'not on the REST port then');
  const none = await startTestDaemon(t, { metricsAddr: 'none' });
  t.equal((await fetch(`${none.daemon.httpUrl}/metrics`)).status, 404, 'none: nowhere');
  t.equal(none.daemon.metricsUrl, undefined);
});

t.test('lockbox-agent serves /metrics on its health address: writes, last applied, seconds since sync', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', { scope, ...createRequest('api', { API_KEY: 'k1' }, { mount: { path: 'files' } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['api'] } });
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });
  const home = realpathSync(tempDir(t));
  const port = 30000 + Math.floor(Math.random() * 20000);
  const child = spawn(process.execPath, [...agentFlags, agentBin, 'run', '--health-addr', `127.0.0.1:${port}`, '--resync-interval', '200ms'], {
    env: agentEnv({ LOCKBOX_ADDR: d.daemon.address, LOCKBOX_TOKEN: token, BENTOML_HOME: home, LOCKBOX_NATS_URL: 'none' }),
  });
  t.teardown(() => child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}/metrics`;
  const scrape = () => scrapeMetrics(url).catch(() => undefined);
  await until('the first write', async () => ((await scrape())?.value('lockbox_agent_writes_total', { result: 'written' }) ?? 0) >= 1);
  const before = (await scrape())!;
  t.equal(before.value('lockbox_build_info', { program: 'lockbox-agent', version }), 1);
  t.ok(before.families.has('process_resident_memory_bytes'), 'process metrics');
  const applied = before.value('lockbox_agent_last_applied_timestamp_seconds', { mount: 'files' });
  t.ok(applied > 0 && applied <= Date.now() / 1000, 'when the mount got its version');
  const since = before.value('lockbox_agent_seconds_since_last_sync');
  t.ok(since >= 0 && since < 60, `seconds since the last good sync: ${since}`);
  t.equal(before.value('lockbox_agent_sync_failures_total'), 0);

  await d.call('UpdateSecret', { scope, name: 'api', set: { API_KEY: Buffer.from('k2') } });
  await until('the rotation on disk', () => readFileSync(join(home, 'files/API_KEY'), 'utf8') === 'k2');
  await until('the rotation counted', async () => ((await scrape())?.value('lockbox_agent_writes_total', { result: 'written' }) ?? 0) > before.value('lockbox_agent_writes_total', { result: 'written' }));
  const after = (await scrape())!;
  t.ok(after.value('lockbox_agent_last_applied_timestamp_seconds', { mount: 'files' }) >= applied, 'last applied moved on');

  await d.daemon.stop(); // lockboxd away: syncs fail and are counted
  await until('a failed sync counted', async () => ((await scrape())?.value('lockbox_agent_sync_failures_total') ?? 0) > 0);
  t.notMatch(after.text, /k1|k2|API_KEY/, 'no value or key in the metrics');
  // The Grafana dashboard asks only for families the programs serve.
  const daemonFamilies = (await scrapeMetrics(`${(await startTestDaemon(t)).daemon.httpUrl}/metrics`)).families;
  const dashboard = readFileSync(join(repoRoot, 'deploy/grafana/lockbox-dashboard.json'), 'utf8');
  const asked = new Set([...dashboard.matchAll(/\b(lockbox_[a-z_]+?)(_bucket|_sum|_count)?\{/g)].map((m) => m[1]));
  t.ok(asked.size >= 12, `${asked.size} families in the dashboard`);
  for (const name of asked) t.ok(daemonFamilies.has(name) || after.families.has(name), `dashboard: ${name} is served`);
  child.kill('SIGTERM');
});

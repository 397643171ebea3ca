/**
 * A hung PostgreSQL (a proxy that keeps the connections open and forwards nothing, as a stopped
 * server does) bounds every call by --database-timeout: reads and writes answer UNAVAILABLE
 * instead of hanging for as long as each client waits, and the daemon serves again once the
 * database answers.
 */
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { schemaBehindProxy } from '../helpers/tcp-proxy.js';
import { restClient } from '../helpers/rest.js';
import { configFromOptions, defaults } from '../../daemon/src/config.js';

t.test('calls on a hung database answer UNAVAILABLE within --database-timeout', async (t) => {
  const { url, proxy } = await schemaBehindProxy(t, await freshSchema(t));
  const d = await startTestDaemon(t, { databaseUrl: url, databaseTimeoutMs: 1000 });
  await d.call('CreateSecret', createRequest('hung', { K: 'v' }));

  proxy.stall();
  // The test client waits 30 s; without bounds these calls would wait that long and fail DEADLINE_EXCEEDED.
  await t.rejects(d.call('GetSecret', { name: 'hung' }), { code: status.UNAVAILABLE }, 'a read');
  await t.rejects(d.call('UpdateSecret', { name: 'hung', set: { K: Buffer.from('w') } }), { code: status.UNAVAILABLE }, 'a write');
  const rest = await restClient(d)('GET', '/v1/admin/secrets/hung');
  t.equal(rest.status, 503, 'REST too');
});

t.test('--database-timeout is checked', async (t) => {
  const base = { dataDir: '/tmp/x', grpcAddr: '127.0.0.1:0', natsUrl: 'none', maxVersions: '10', logLevel: 'info', drainTimeout: '1s', idempotencyTtl: defaults.idempotencyTtl };
  t.equal(configFromOptions(base).databaseTimeoutMs, 10_000, 'default 10 s');
  t.equal(configFromOptions({ ...base, databaseTimeout: '2s' }).databaseTimeoutMs, 2000);
  t.throws(() => configFromOptions({ ...base, databaseTimeout: '0' }), /--database-timeout \(LOCKBOX_DATABASE_TIMEOUT\): "0" must be from 100ms to 10m/);
  t.throws(() => configFromOptions({ ...base, databaseTimeout: 'soon' }), /--database-timeout/);
});

/**
 * A call whose client gave up changes nothing: the caller's gRPC deadline is carried to the
 * services, and a write whose deadline passed while it waited (here for a hung database) is
 * refused DEADLINE_EXCEEDED before it commits, and audited as refused.
 */
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { schemaBehindProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/wait.js';
import { beforeDeadline } from '../../daemon/src/services/context.js';
import { deadlineOf } from '../../daemon/src/api/grpc-server.js';

t.test('an update whose deadline passed while the database hung is not applied', async (t) => {
  const { url, proxy } = await schemaBehindProxy(t, await freshSchema(t));
  const d = await startTestDaemon(t, { databaseUrl: url, databaseTimeoutMs: 20_000 });
  await d.call('CreateSecret', createRequest('slow', { K: 'v1' }));

  proxy.stall();
  const update = d.call('UpdateSecret', { name: 'slow', set: { K: Buffer.from('v2') } }, { deadlineMs: 500 });
  await t.rejects(update, { code: status.DEADLINE_EXCEEDED }, 'the client stops waiting at its deadline');
  // The daemon is still waiting on the database; let it answer now, well past the deadline.
  proxy.unstall();
  await until('the daemon logs the refused update', () => d.logs.some((line) => line.includes('DEADLINE_EXCEEDED')));

  const got = await d.call('GetSecret', { name: 'slow' });
  t.equal(got.version, 1, 'still version 1: the update the client gave up on was not applied');
  const audit = await d.rpc('AuditService', 'ListAudit', { limit: 50 });
  const entry = audit.entries.find((e: { action: string; outcome: string }) => e.action === 'secret.update');
  t.ok(entry, 'the refused update is audited');
  t.match(entry.outcome, /DEADLINE_EXCEEDED/, 'with its reason');

  const again = await d.call('UpdateSecret', { name: 'slow', set: { K: Buffer.from('v2') } });
  t.equal(again.version, 2, 'a call with time left is applied');
});

t.test('beforeDeadline and deadlineOf', async (t) => {
  const ctx = { principal: {} as never, requestId: 'r', deadline: 1000 };
  t.doesNotThrow(() => beforeDeadline(ctx, 'the write', 999), 'time left');
  t.throws(() => beforeDeadline(ctx, 'the write', 1000), { code: 'DEADLINE_EXCEEDED', message: "the caller's deadline passed before the write; nothing was changed" });
  t.doesNotThrow(() => beforeDeadline({ ...ctx, deadline: undefined }, 'the write'), 'no deadline: REST, or a client that set none');
  t.equal(deadlineOf({ getDeadline: () => Infinity }), undefined, 'grpc-js says Infinity when the client set none');
  t.equal(deadlineOf({ getDeadline: () => new Date(5000) }), 5000);
  t.equal(deadlineOf({ getDeadline: () => 7000 }), 7000);
});

/** Quotas on PostgreSQL, where they are counted under a per-tenant lock only when a create could pass one. */
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';

t.test('resource groups and tenant-wide secrets are capped; a name taken is ALREADY_EXISTS', async (t) => {
  const d = await startTestDaemon(t, { databaseUrl: await freshSchema(t), quotas: { maxTenantWideSecrets: 1, maxResourceGroups: 2 } });
  const at = (resource_group: string) => ({ tenant: 'default', resource_group });
  await d.call('CreateSecret', { scope: at('g1'), ...createRequest('a', { K: 'v' }) });
  await d.call('CreateSecret', { scope: at('g2'), ...createRequest('a', { K: 'v' }) });
  await t.rejects(d.call('CreateSecret', { scope: at('g3'), ...createRequest('a', { K: 'v' }) }), { code: status.RESOURCE_EXHAUSTED, details: /2 resource groups in use; the limit is 2/ }, 'a third group');
  t.ok(await d.call('CreateSecret', { scope: at('g1'), ...createRequest('b', { K: 'v' }) }), 'a group already in use takes more');
  t.ok(await d.call('CreateSecret', { scope: at(''), ...createRequest('main', { K: 'v' }) }), 'the main-tenant scope is no group');
  await d.call('CreateSecret', { scope: at('*'), ...createRequest('wide', { K: 'v' }) });
  await t.rejects(d.call('CreateSecret', { scope: at('*'), ...createRequest('wide2', { K: 'v' }) }), { code: status.RESOURCE_EXHAUSTED, details: /1 tenant-wide secrets; the limit is 1/ });
  await t.rejects(d.call('CreateSecret', { scope: at('g1'), ...createRequest('a', { K: 'v' }) }), { code: status.ALREADY_EXISTS, details: /secret "a" already exists/ });
  // Two creates racing for the last group: the lock lets exactly one through.
  await d.call('DeleteSecret', { scope: at('g2'), name: 'a' });
  const race = await Promise.allSettled(['g4', 'g5'].map((g) => d.call('CreateSecret', { scope: at(g), ...createRequest('a', { K: 'v' }) })));
  t.same(race.map((r) => r.status).sort(), ['fulfilled', 'rejected'], 'one of two racing new groups fits');
});

/**
 * A resource group's list holds the tenant-wide secrets visible there, marked by their scope
 * (DESIGN: "a resource group's list includes the tenant-wide secrets visible there, marked"), over
 * gRPC, REST v1 and the CLI; the group's own secret of the same name is listed instead; paging
 * across the two sources neither skips nor repeats; `own_only` lists the group's own only, and
 * `lockbox apply --prune` in a group never touches a tenant-wide secret.
 */
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequest, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { restClient } from '../helpers/rest.js';
import { runLockbox } from '../helpers/cli.js';

const scope = (resource_group: string) => ({ tenant: 'default', resource_group });

async function pages(d: TestDaemon, request: object, limit: number): Promise<string[][]> {
  const all: string[][] = [];
  let cursor = '';
  do {
    const page = await d.call('ListSecrets', { ...request, limit, cursor });
    all.push(page.secrets.map((s: { name: string; scope: { resource_group: string } }) => `${s.name}@${s.scope.resource_group}`));
    cursor = page.next_cursor;
  } while (cursor);
  return all;
}

async function seeded(t: { teardown(fn: () => unknown): void }) {
  const d = await startTestDaemon(t);
  for (const name of ['a-wide', 'm-both', 'z-wide']) await d.call('CreateSecret', { scope: scope('*'), ...createRequest(name, { K: 'wide' }) });
  for (const name of ['b-own', 'm-both', 'y-own']) await d.call('CreateSecret', { scope: scope('team-a'), ...createRequest(name, { K: 'own' }) });
  return d;
}

t.test('gRPC: the group list merges the tenant-wide secrets by name, paged without gaps or repeats', async (t) => {
  const d = await seeded(t);
  const expected = ['a-wide@*', 'b-own@team-a', 'm-both@team-a', 'y-own@team-a', 'z-wide@*'];
  for (const limit of [1, 2, 3, 100]) t.same((await pages(d, { scope: scope('team-a') }, limit)).flat(), expected, `pages of ${limit}`);
  t.same((await pages(d, { scope: scope('team-a') }, 2)).map((p) => p.length), [2, 2, 1], 'full pages until the last');
  t.same((await pages(d, { scope: scope('team-a'), own_only: true }, 2)).flat(), ['b-own@team-a', 'm-both@team-a', 'y-own@team-a'], 'own_only: the group only');
  t.same((await pages(d, { scope: scope('*') }, 2)).flat(), ['a-wide@*', 'm-both@*', 'z-wide@*'], 'the tenant-wide list itself');
  t.same((await pages(d, { scope: scope('team-b') }, 2)).flat(), ['a-wide@*', 'm-both@*', 'z-wide@*'], 'a group with none of its own sees the tenant-wide ones');

  const first = await d.call('ListSecrets', { scope: scope('team-a'), limit: 2 });
  await t.rejects(d.call('ListSecrets', { scope: scope('team-a'), limit: 2, cursor: first.next_cursor, own_only: true }), { code: status.INVALID_ARGUMENT, details: /cursor/ }, 'a cursor is bound to own_only as to the other filters');

  await d.call('UpdateSecret', { scope: scope('*'), name: 'z-wide', set: { K: Buffer.from('w2') }, set_labels: { tier: 'gold' } });
  const gold = await d.call('ListSecrets', { scope: scope('team-a'), labels: ['tier=gold'] });
  t.same(gold.secrets.map((s: { name: string }) => s.name), ['z-wide'], 'filters apply to the tenant-wide secrets too');
});

t.test('REST v1 and the CLI list them too, marked', async (t) => {
  const d = await seeded(t);
  const rest = restClient(d);
  const all = await rest('GET', '/v1/admin/secrets?limit=2', { headers: { 'AI-Resource-Group': 'team-a' } });
  t.same(all.json.secrets.map((s: { name: string; scope: { resource_group: string } }) => [s.name, s.scope.resource_group]), [['a-wide', '*'], ['b-own', 'team-a']]);
  const own = await rest('GET', '/v1/admin/secrets?own_only=true', { headers: { 'AI-Resource-Group': 'team-a' } });
  t.same(own.json.secrets.map((s: { name: string }) => s.name), ['b-own', 'm-both', 'y-own']);

  const g = ['--addr', d.daemon.address, '--token', d.adminToken];
  const listed = await runLockbox([...g, 'secret', 'list', '--resource-group', 'team-a']);
  t.equal(listed.code, 0, listed.stderr);
  t.match(listed.stdout, /^NAME\s+SCOPE\s+TYPE/);
  t.match(listed.stdout, /\na-wide\s+\*\s+opaque/, 'a tenant-wide secret shows SCOPE *');
  t.match(listed.stdout, /\nb-own\s+team-a\s+opaque/);
  const ownOnly = await runLockbox([...g, 'secret', 'list', '--resource-group', 'team-a', '--own-only', '-o', 'name']);
  t.equal(ownOnly.stdout, 'secret/b-own\nsecret/m-both\nsecret/y-own\n');

  const dir = tempDir(t);
  const file = join(dir, 'secrets.yaml');
  writeFileSync(file, 'secrets:\n  - name: b-own\n    data: { K: own }\n');
  const applied = await runLockbox([...g, 'apply', '-f', file, '--prune', '--resource-group', 'team-a']);
  t.equal(applied.code, 0, applied.stderr);
  t.notMatch(applied.stdout, /wide/, 'prune in a group never names a tenant-wide secret');
  t.same((await pages(d, { scope: scope('*') }, 100)).flat(), ['a-wide@*', 'm-both@*', 'z-wide@*'], 'every tenant-wide secret is still there');
  t.same((await pages(d, { scope: scope('team-a'), own_only: true }, 100)).flat(), ['b-own@team-a'], "the group's others were pruned");
});

/**
 * PostgreSQL at scale (issue 13 item 7): group commit across callers (store-postgres.ts (8)),
 * names in C collation so a list page is a range of the key (7), and the audit chain that
 * replicas append to without waiting for each other (store-postgres-audit.ts (c)).
 */
import t from 'tap';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { AlreadyExistsError } from '../../shared/src/errors.js';
import Database from 'better-sqlite3';
import { PostgresStore } from '../../daemon/src/store/store-postgres.js';
import { SqliteStore } from '../../daemon/src/store/store-sqlite.js';
import { IdempotencyReplayError, type AuditDraft, type Change, type CommitOutcome, type IdempotencyRecord } from '../../daemon/src/store/store.js';
import { createRequest, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';

const scope = { tenant: 'default', resourceGroup: '' };

function create(name: string, extra: { createTime?: string; resourceGroup?: string } = {}): Change {
  const uid = randomUUID();
  const s = { ...scope, resourceGroup: extra.resourceGroup ?? '' };
  const time = extra.createTime ?? new Date().toISOString();
  return {
    operation: 'create',
    scope: s,
    name,
    record: {
      ...s,
      name,
      uid,
      version: 1,
      operation: 'create',
      restoredFrom: 0,
      type: 'opaque',
      template: '',
      description: '',
      labels: {},
      mount: { kind: 'file', path: name, subPaths: {}, format: '' } as never,
      keys: ['K'],
      createTime: time,
      changeSeq: 0,
      envelope: { masterKeyId: 'k1', wrappedKey: new Uint8Array(8), ciphertext: new Uint8Array(16), adFormat: 2 } as never,
    },
    notice: { subject: `s.${name}`, ...s, name, uid, version: 1, operation: 'create', time },
  };
}

const draft = (target: string): AuditDraft => ({
  time: new Date().toISOString(),
  tokenId: 't',
  role: 'admin',
  tenant: 'default',
  resourceGroup: '',
  action: 'secret.create',
  target,
  version: 1,
  outcome: 'ok',
  requestId: 'r',
});

async function openStore(t: { teardown(fn: () => unknown): void }, url: string) {
  const sizes: number[] = [];
  const store = await PostgresStore.open({
    url,
    maxVersions: 10,
    auditHasher: (e) => `${e.seq}:${e.target}:${e.prevHash.slice(0, 8)}`,
    observer: { committed: (_s, size) => sizes.push(size), auditWritten: () => {} },
  });
  t.teardown(() => store.close());
  return { store, sizes };
}

t.test('group commit: writes arriving together share a transaction; one failing never fails the others', async (t) => {
  const url = await freshSchema(t);
  const { store, sizes } = await openStore(t, url);
  await store.commit([create('taken')]);

  // 40 creates at once, one of a name already taken and two of one new name.
  const changes = Array.from({ length: 40 }, (_, i) => create(i === 0 ? 'taken' : i === 1 || i === 2 ? 'twice' : `s${i}`));
  const settled = await Promise.all(changes.map((c) => store.commit([c], undefined, (o) => [draft(c.name + (o[0].ok ? '' : ' failed'))])));
  t.ok(Math.max(...sizes) > 1, `commits were grouped (largest group ${Math.max(...sizes)})`);
  t.equal(settled[0][0].ok, false, 'the taken name fails');
  t.type((settled[0][0] as { error: unknown }).error, AlreadyExistsError);
  t.same([settled[1][0].ok, settled[2][0].ok].sort(), [false, true], 'one of two creates of one name wins');
  t.equal(settled.filter((s) => s[0].ok).length, 38, 'every other create applied');
  const seqs = settled.filter((s) => s[0].ok).map((s) => (s[0] as { seq: number }).seq);
  t.equal(new Set(seqs).size, 38, 'each its own change seq');
  const head = await store.getHead(scope, 's7');
  t.equal(head?.changeSeq, (settled[7][0] as { seq: number }).seq, 'the version carries its notice seq');
  t.equal((await store.pendingNotices(100)).length, 39, 'one notice per applied create');
  const audit = await store.listAudit({ afterSeq: 0, limit: 100 });
  t.equal(audit.length, 40, 'every outcome of the 40 audited, failures included');
  t.ok(audit.some((e) => e.target === 'taken failed'));

  // A job without a savepoint of its own that fails (its audit callback throws) takes its change
  // with it; the whole group runs again one job at a time, and the others still apply.
  const bad = create('bad');
  const others = ['o1', 'o2', 'o3'].map((n) => create(n));
  const results = await Promise.allSettled([
    ...others.slice(0, 2).map((c) => store.commit([c], undefined, () => [draft(c.name)])),
    store.commit([bad], undefined, () => {
      throw new Error('audit callback broke');
    }),
    store.commit([others[2]]),
  ]);
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
  t.equal(await store.getHead(scope, 'bad'), undefined, 'the failed job left nothing behind');
  for (const c of others) t.ok(await store.getHead(scope, c.name), `${c.name} applied`);

  // A create the database refuses (a NUL byte in text) fails the one statement of the group's
  // creates: the group runs again one job at a time, and only that create fails.
  const refused = create('refused', { createTime: 'bad\u0000time' });
  const mixed = await Promise.allSettled([store.commit([create('m1')]), store.commit([refused]), store.commit([create('m2')])]);
  t.same(mixed.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
  t.match((mixed[1] as PromiseRejectedResult).reason, { code: '22021' }, 'the database error, for that create alone');
  t.equal(await store.getHead(scope, 'refused'), undefined);
});

t.test('group commit: jobs with a key run in their own savepoint; a lost race runs again alone', async (t) => {
  const url = await freshSchema(t);
  const { store } = await openStore(t, url);
  const key = (k: string): IdempotencyRecord => ({
    tenant: 'default',
    key: k,
    method: 'CreateSecret',
    fingerprint: 'f',
    createTime: new Date().toISOString(),
    respond: (o: CommitOutcome[]) => JSON.stringify(o[0].ok),
  });
  // One key twice in one group: the second sees the first's answer (same transaction).
  const [first, second] = await Promise.allSettled([store.commit([create('k1')], key('same')), store.commit([create('k2')], key('same'))]);
  t.equal(first.status, 'fulfilled');
  t.type((second as PromiseRejectedResult).reason, IdempotencyReplayError);
  t.equal(await store.getHead(scope, 'k2'), undefined, 'the replayed call wrote nothing');

  // A job that fails with a deadlock (what PostgreSQL reports when two groups lock rows in
  // opposite orders) runs again in a transaction of its own; the rest of its group commits.
  let calls = 0;
  const raced = store.commit([create('raced')], key('raced'), () => {
    if (calls++ === 0) throw Object.assign(new Error('deadlock detected'), { code: '40P01' });
    return [draft('raced')];
  });
  const beside = store.commit([create('beside')], key('beside'));
  await Promise.all([raced, beside]);
  t.equal(calls, 2, 'the job ran twice');
  t.ok(await store.getHead(scope, 'raced'));
  t.ok(await store.getHead(scope, 'beside'));
  t.equal((await store.listAudit({ afterSeq: 0, limit: 10, target: 'raced' })).length, 1, 'audited once');

  // Quotas still hold inside groups: creates racing for the last new group.
  const quotas = { maxTenantWideSecrets: 10, maxResourceGroups: 1 };
  const groups = await Promise.allSettled(['g1', 'g2', 'g3'].map((g) => store.commit([{ ...create(`in-${g}`, { resourceGroup: g }), quotas }])));
  t.equal(groups.filter((g) => g.status === 'fulfilled' && g.value[0].ok).length, 1, 'one group taken into use');
});

t.test('a list page is a range scan of the primary key, in byte order (migration 7)', async (t) => {
  const url = await freshSchema(t);
  const { store } = await openStore(t, url);
  for (const name of ['b', 'a', 'B', 'a-1', 'A']) await store.commit([create(name)]);
  t.same((await store.listHeads(scope, '', 10)).map((h) => h.name), ['A', 'B', 'a', 'a-1', 'b'], 'bytewise, as SQLite');
  t.same((await store.listHeads(scope, 'B', 2)).map((h) => h.name), ['a', 'a-1'], 'keyset: strictly after the cursor');
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  t.teardown(() => db.end());
  await db.query('SET enable_seqscan = off'); // a tiny table: ask for the plan the index gives
  const plan = (
    await db.query(
      `EXPLAIN SELECT s.name FROM secrets s JOIN secret_versions v ON v.uid = s.uid AND v.version = s.version
       WHERE s.tenant = 'default' AND s.resource_group = '' AND s.name > 'a' ORDER BY s.name LIMIT 100`,
    )
  ).rows
    .map((r) => r['QUERY PLAN'])
    .join('\n');
  t.match(plan, /Index (Only )?Scan using secrets_pkey/, 'the page reads the primary key');
  t.notMatch(plan, /Sort/, 'in order: nothing is sorted');
});

t.test('on SQLite the same page is a range of the primary key already (BINARY sorts bytewise)', async (t) => {
  const store = new SqliteStore({ dataDir: tempDir(t), maxVersions: 10, auditHasher: () => '' });
  t.teardown(() => store.close());
  const statement = (store as unknown as { stmt: { listHeads: { source: string } } }).stmt.listHeads;
  const db = (store as unknown as { db: Database.Database }).db;
  const plan = (db.prepare(`EXPLAIN QUERY PLAN ${statement.source}`).all('default', '', 'a', 100) as Array<{ detail: string }>).map((r) => r.detail).join('\n');
  t.match(plan, /SEARCH s USING PRIMARY KEY \(tenant=\? AND resource_group=\? AND name>\?\)/, 'the key, from the cursor on');
  t.notMatch(plan, /TEMP B-TREE/, 'nothing is sorted');
});

t.test('two replicas append audit entries at once: one chain, verified; a tampered row is found', async (t) => {
  const url = await freshSchema(t);
  const masterKeyFile = join(tempDir(t), 'master.key');
  writeFileSync(masterKeyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  const a = await startTestDaemon(t, { databaseUrl: url, masterKeyFile });
  const b = await startTestDaemon(t, { databaseUrl: url, masterKeyFile });
  const onB = { token: a.adminToken };
  await a.call('CreateSecret', createRequest('shared', { K: 'v' }));
  // Writes and audited reads on both replicas at once.
  await Promise.all(
    Array.from({ length: 40 }, (_, i) => {
      const [replica, opts] = i % 2 ? [a, {}] : [b, onB];
      return i % 4 < 2
        ? replica.call('CreateSecret', createRequest(`r${i}`, { K: String(i) }), opts)
        : replica.call('GetSecret', { name: 'shared', include_values: true }, opts);
    }),
  );
  const head = await b.rpc('AuditService', 'AuditHead', {}, onB);
  for (const [replica, opts] of [[a, {}], [b, onB]] as const) {
    const verified = await replica.rpc('AuditService', 'VerifyAudit', { head: `${head.seq}:${head.hash}` }, opts);
    t.equal(verified.ok, true, 'the chain and the checkpoint verify on either replica');
  }
  const entries = (await a.rpc('AuditService', 'ListAudit', { limit: 1000 })).entries as Array<{ seq: number; action: string; count: number }>;
  t.same(entries.map((e) => Number(e.seq)), entries.map((_, i) => i + 1), 'one line of seqs, no gaps');
  t.equal(entries.filter((e) => e.action === 'secret.create').length, 21, 'every create on record');
  const reads = entries.filter((e) => e.action === 'secret.read').reduce((n, e) => n + Number(e.count || 1), 0);
  t.equal(reads, 20, 'every read on record (identical reads of one commit share an entry that counts them)');

  const db = new pg.Client({ connectionString: url });
  await db.connect();
  t.teardown(() => db.end());
  await db.query("UPDATE audit SET target = 'someone-else' WHERE seq = 7");
  const broken = await b.rpc('AuditService', 'VerifyAudit', {}, onB);
  t.equal(broken.ok, false, 'a tampered row breaks the chain');
  t.equal(Number(broken.first_broken_seq), 7, 'and is named');
});

// store-postgres-group-commit.ts (5), store-sqlite-group-commit.ts (4): the caller's deadline is
// checked again when the job begins inside the group transaction (the wait for a connection is
// in the queue, after the services' check); a job past it writes nothing, its neighbours apply.
t.test('group commit: a job whose caller\'s deadline has passed when it begins fails DEADLINE_EXCEEDED unwritten', async (t) => {
  const url = await freshSchema(t);
  const { store: pgStore } = await openStore(t, url);
  const sqlite = new SqliteStore({ dataDir: tempDir(t), maxVersions: 10, auditHasher: () => '' });
  t.teardown(() => sqlite.close());
  for (const [label, store] of [['PostgreSQL', pgStore], ['SQLite', sqlite]] as const) {
    const past = Date.now() - 1;
    const results = await Promise.allSettled([
      store.commit([create('before')]),
      store.commit([create('late')], undefined, undefined, past),
      store.commit([create('after')], undefined, undefined, Date.now() + 600_000),
    ]);
    t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'], `${label}: only the late job fails`);
    t.match((results[1] as PromiseRejectedResult).reason, { code: 'DEADLINE_EXCEEDED', message: /deadline passed before the write began/ }, `${label}: DEADLINE_EXCEEDED`);
    t.equal(await store.getHead(scope, 'late'), undefined, `${label}: the late create was not applied`);
    t.ok(await store.getHead(scope, 'before'), `${label}: its neighbour applied`);
    t.ok(await store.getHead(scope, 'after'), `${label}: a job within its deadline applied`);
  }
});

t.test("deployments and tokens: a write whose caller's deadline has passed when its job begins is not applied", async (t) => {
  const url = await freshSchema(t);
  const { store: pgStore } = await openStore(t, url);
  const sqlite = new SqliteStore({ dataDir: tempDir(t), maxVersions: 10, auditHasher: () => '' });
  t.teardown(() => sqlite.close());
  const now = new Date().toISOString();
  const deployment = (name: string) => ({ tenant: 'default', resourceGroup: '', name, uid: `uid-${name}`, version: 1, secrets: [], description: '', labels: {}, createTime: now, updateTime: now });
  const token = (id: string) => ({ id, hash: `hash-${id}`, role: 'viewer', tenant: 'default', resourceGroups: [], deployment: '', deploymentResourceGroup: '', description: '', createTime: now, expireTime: '', revokeTime: '', createdBy: '' });
  for (const [label, store] of [['PostgreSQL', pgStore], ['SQLite', sqlite]] as const) {
    const past = Date.now() - 1;
    const late = { code: 'DEADLINE_EXCEEDED' };
    await t.rejects(store.writeDeployment({ operation: 'create', record: deployment('late') }, [], past), late, `${label}: a late deployment create`);
    t.equal(await store.getDeployment({ tenant: 'default', resourceGroup: '' }, 'late'), undefined, `${label}: not applied`);
    await store.writeDeployment({ operation: 'create', record: deployment('kept') }, [], Date.now() + 600_000);
    await t.rejects(store.writeDeployment({ operation: 'delete', record: deployment('kept') }, [], past), late, `${label}: a late deployment delete`);
    t.ok(await store.getDeployment({ tenant: 'default', resourceGroup: '' }, 'kept'), `${label}: still there`);

    await t.rejects(store.insertToken(token('0000000000000001'), [], past), late, `${label}: a late token create`);
    t.equal(await store.getToken('0000000000000001'), undefined, `${label}: no token`);
    await store.insertToken(token('0000000000000002'), [], Date.now() + 600_000);
    await t.rejects(store.revokeToken('0000000000000002', now, [], past), late, `${label}: a late revoke`);
    t.equal((await store.getToken('0000000000000002'))?.revokeTime, '', `${label}: the token is not revoked`);
  }
});


/**
 * Retention of the audit log (issue 13.6): `lockbox audit export` writes signed JSON lines that
 * `audit verify --file` checks offline, naming the first bad line; `audit prune` removes old
 * entries behind a signed cut, and the chain still verifies online and in a new export — on
 * SQLite and on PostgreSQL.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import pg from 'pg';
import { checkAuditExport } from '../../shared/src/audit-export.js';
import { AUDIT_CUT_META } from '../../daemon/src/store/store.js';
import { runLockbox } from '../helpers/cli.js';
import { createRequest, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { restClient } from '../helpers/rest.js';
import { until } from '../helpers/wait.js';

const scope = { tenant: 'default', resource_group: '' };

/** The CLI against `d` as its admin. */
const lockbox = (d: TestDaemon, args: string[]) => runLockbox(['--addr', d.daemon.address, '--token', d.adminToken, ...args]);

async function createSecrets(d: TestDaemon, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await d.call('CreateSecret', { scope, ...createRequest(`${prefix}-${i}`, { K: `canary-value-${i}` }) });
}

/** Writes `lines` as an export file and checks it with the CLI. */
async function verifyLines(d: TestDaemon, dir: string, name: string, lines: string[], extra: string[] = []) {
  const file = join(dir, name);
  writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
  return lockbox(d, ['audit', 'verify', '--file', file, ...extra]);
}

t.test('export → verify --file; an edited, removed or cut line is named; a pinned key is checked', async (t) => {
  const d = await startTestDaemon(t);
  t.teardown(() => d.stop());
  await createSecrets(d, 'a', 5);
  const dir = tempDir(t);
  const file = join(dir, 'audit.jsonl');
  const exported = await lockbox(d, ['audit', 'export', '--since', '2000-01-01', '-f', file]);
  t.equal(exported.code, 0, exported.stderr);
  t.match(exported.stderr, /wrote 5 audit entries/);
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  t.equal(lines.length, 7, 'header, five entries, end');
  const header = JSON.parse(lines[0]);
  t.same([header.format, header.from.seq, header.from.hash], ['lockbox-audit-export/v1', 0, '']);
  t.equal(JSON.parse(lines[6]).end.seq, 5);
  t.notMatch(readFileSync(file, 'utf8'), /canary-value/, 'no value in the file');

  const head = await lockbox(d, ['audit', 'head']);
  const publicKey = /public key ([0-9a-f]{64})/.exec(head.stdout)![1];
  const third = JSON.parse(lines[3]);
  const ok = await lockbox(d, ['audit', 'verify', '--file', file, '--public-key', publicKey, '--head', `${third.seq}:${third.hash}`]);
  t.equal(ok.code, 0, ok.stdout + ok.stderr);
  t.match(ok.stdout, /audit export intact: 5 entries \(after entry 0, up to 5\), signed by the pinned key/);

  const edited = [...lines];
  edited[3] = JSON.stringify({ ...third, target: 'someone-else' });
  const bad = await verifyLines(d, dir, 'edited.jsonl', edited);
  t.equal(bad.code, 1);
  t.match(bad.stdout, /BROKEN at line 4: entry 3: its signature does not verify: the line was edited/);

  const rehashed = [...lines];
  rehashed[3] = JSON.stringify({ ...third, hash: 'f'.repeat(64) });
  t.match((await verifyLines(d, dir, 'rehashed.jsonl', rehashed)).stdout, /BROKEN at line 4/);

  const sinceEdited = [JSON.stringify({ ...header, since: '2020-01-01T00:00:00.000Z' }), ...lines.slice(1)];
  t.match((await verifyLines(d, dir, 'since.jsonl', sinceEdited)).stdout, /BROKEN at line 1: the header's signature over format, since and from does not verify/);
  const unsigned = [JSON.stringify({ ...header, signature: undefined }), ...lines.slice(1)];
  t.match((await verifyLines(d, dir, 'unsigned.jsonl', unsigned)).stdout, /BROKEN at line 1: the header's signature/);

  const removed = lines.filter((_, i) => i !== 2);
  t.match((await verifyLines(d, dir, 'removed.jsonl', removed)).stdout, /BROKEN at line 3: entry 3 does not follow entry 1/);

  const cut = lines.slice(0, 5);
  t.match((await verifyLines(d, dir, 'cut.jsonl', cut)).stdout, /BROKEN at line 5: the file ends without its end checkpoint/);
  const endMoved = [...lines.slice(0, 5), lines[6]];
  t.match((await verifyLines(d, dir, 'end.jsonl', endMoved)).stdout, /BROKEN at line 6: the end checkpoint is entry 5, but the last line is entry 4/);

  const wrongKey = await verifyLines(d, dir, 'key.jsonl', lines, ['--public-key', 'ab'.repeat(32)]);
  t.match(wrongKey.stdout, /BROKEN at line 1: signed by key .*not the pinned abab/);
  const otherHead = await verifyLines(d, dir, 'head.jsonl', lines, ['--head', `3:${'0'.repeat(64)}`]);
  t.match(otherHead.stdout, /BROKEN at line 7: entry 3 of the known head does not hash/);
  t.match((await verifyLines(d, dir, 'junk.jsonl', ['{']))?.stdout, /BROKEN at line 1: not a JSON line/);

  // --since as a duration: nothing in the last hour is before the daemon started, so all 5 (and the head) are there.
  const recent = await lockbox(d, ['audit', 'export', '--since', '1h']);
  t.equal(recent.code, 0, recent.stderr);
  t.ok(checkAuditExport(recent.stdout).ok);
  t.equal(checkAuditExport(recent.stdout).entries, 5);
  const none = await lockbox(d, ['audit', 'export', '--since', '2999-01-01']);
  t.same([checkAuditExport(none.stdout).ok, checkAuditExport(none.stdout).entries], [true, 0], 'nothing since then: a header and an end at the head');
  const usage = await lockbox(d, ['audit', 'export', '--since', 'yesterday']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--since: "yesterday" is neither a date/);
  for (const huge of ['99999999999999h', '9999999999999999999999']) {
    const tooFar = await lockbox(d, ['audit', 'export', '--since', huge]);
    t.equal(tooFar.code, 2, `${huge}: a usage error, not a crash`);
    t.match(tooFar.stderr, new RegExp(`--since: "${huge}" reaches back before any date there is`));
  }
});

for (const store of ['sqlite', 'postgres'] as const)
  t.test(`prune (${store}): removes what is older behind a signed cut; online verify and a new export still hold`, async (t) => {
    const d = await startTestDaemon(t, store === 'postgres' ? { databaseUrl: await freshSchema(t) } : {});
    t.teardown(() => d.stop());
    await createSecrets(d, 'old', 4);
    const last = (await d.rpc('AuditService', 'ListAudit', { limit: 100 })).entries.at(-1);
    await until('the clock moved past the last old entry', () => Date.now() > Date.parse(last.time));
    const before = new Date().toISOString();
    await createSecrets(d, 'new', 2);

    const reader = await d.rpc('TokensService', 'CreateToken', { role: 'reader' });
    await t.rejects(d.rpc('AuditService', 'PruneAudit', { before }, { token: reader.token }), { code: status.PERMISSION_DENIED });
    const listed = (await d.rpc('AuditService', 'ListAudit', { limit: 100 })).entries;
    const older = listed.filter((e: any) => Date.parse(e.time) < Date.parse(before));
    const cutSeq = Number(older.at(-1).seq);
    t.ok(older.length >= 4, 'the old creates are older');
    t.match(listed.at(-1), { action: 'audit.prune', outcome: 'PERMISSION_DENIED' }, 'a refused prune is audited');

    const pruned = await lockbox(d, ['audit', 'prune', '--before', before, '-o', 'json']);
    t.equal(pruned.code, 0, pruned.stderr);
    const result = JSON.parse(pruned.stdout);
    t.equal(Number(result.removed), older.length);
    t.equal(Number(result.checkpoint.seq), cutSeq);
    t.equal(result.checkpoint.hash, older.at(-1).hash);

    const entries = (await d.rpc('AuditService', 'ListAudit', { limit: 100 })).entries;
    t.equal(Number(entries[0].seq), cutSeq + 1, 'everything after the cut is kept');
    t.equal(entries.length, listed.length - older.length + 1, 'and one entry more: the prune itself');
    t.match(entries.at(-1), { action: 'audit.prune', outcome: 'ok' });
    t.equal(Number(entries.at(-1).version), cutSeq);
    const verify = await lockbox(d, ['audit', 'verify']);
    t.equal(verify.code, 0, verify.stdout + verify.stderr);
    t.match(verify.stdout, `audit log intact: ${entries.length} entries verified (from the signed cut of the last prune, entry ${cutSeq})`);
    const atCut = await lockbox(d, ['audit', 'verify', '--head', `${cutSeq}:${result.checkpoint.hash}`]);
    t.equal(atCut.code, 0, 'a head kept at the cut still checks');
    const wrongAtCut = await lockbox(d, ['audit', 'verify', '--head', `${cutSeq}:${'0'.repeat(64)}`]);
    t.equal(wrongAtCut.code, 1, 'a head at the cut with another hash does not');

    const rest = restClient(d);
    t.match((await rest('POST', '/v1/admin/audit:verify')).json, { ok: true, verified_from: cutSeq }, 'REST verify (its answer checked against /openapi.json)');

    const exported = await lockbox(d, ['audit', 'export']);
    const check = checkAuditExport(exported.stdout);
    const headSeq = Number(entries.at(-1).seq);
    t.same([check.ok, check.from, check.to, check.entries], [true, cutSeq, headSeq, entries.length], check.problem);

    // Again with nothing older: nothing removed, the same cut.
    const again = JSON.parse((await lockbox(d, ['audit', 'prune', '--before', before, '-o', 'json'])).stdout);
    t.same([Number(again.removed ?? 0), Number(again.checkpoint.seq)], [0, cutSeq]);
    // A `before` in the future is refused: it would delete entries written after the call.
    const future = (await rest('POST', '/v1/admin/audit:prune', { body: { before: '2999-01-01T00:00:00Z' } }));
    t.equal(future.status, 400);
    t.match(JSON.stringify(future.json), /before.*2999-01-01T00:00:00.000Z is in the future/);
    t.equal((await d.rpc('AuditService', 'ListAudit', { limit: 100 })).entries[0].seq, entries[0].seq, 'nothing removed');
    // The newest entry always stays, whatever the time (here over REST).
    const head = (await d.rpc('AuditService', 'AuditHead', {})).seq;
    t.equal((await rest('POST', '/v1/admin/audit:prune', { body: { before: 'soon' } })).status, 400);
    const all = (await rest('POST', '/v1/admin/audit:prune', { body: { before: new Date().toISOString() } })).json as any;
    t.equal(Number(all.checkpoint.seq), Number(head) - 1);
    t.ok(all.removed > 0);
    t.equal((await lockbox(d, ['audit', 'verify'])).code, 0);
    await d.call('CreateSecret', { scope, ...createRequest('after', { K: 'x' }) });
    t.equal((await lockbox(d, ['audit', 'verify'])).code, 0, 'the chain goes on from the entry kept');
  });

t.test('a cut edited in the database, or a head planted as one, fails verify; a broken chain is neither pruned nor exported past the break', async (t) => {
  const d = await startTestDaemon(t);
  t.teardown(() => d.stop());
  await createSecrets(d, 's', 4);
  t.equal((await lockbox(d, ['audit', 'prune', '--before', new Date().toISOString()])).code, 0);
  const db = new Database(join(d.dataDir, 'lockbox.db'));
  t.teardown(() => db.close());
  const cut = JSON.parse((db.prepare('SELECT value FROM meta WHERE name = ?').get(AUDIT_CUT_META) as { value: string }).value);
  db.prepare('UPDATE meta SET value = ? WHERE name = ?').run(JSON.stringify({ ...cut, seq: cut.seq - 1 }), AUDIT_CUT_META);
  const verify = await lockbox(d, ['audit', 'verify']);
  t.equal(verify.code, 1);
  t.match(verify.stdout, /the signed cut of the last prune \(entry \d+\) does not verify/);
  db.prepare('UPDATE meta SET value = ? WHERE name = ?').run(JSON.stringify(cut), AUDIT_CUT_META);
  t.equal((await lockbox(d, ['audit', 'verify'])).code, 0);

  await createSecrets(d, 't', 2);
  const seq = (db.prepare('SELECT MAX(seq) AS seq FROM audit').get() as { seq: number }).seq;
  const forgedFrom = db.prepare('SELECT seq, target FROM audit WHERE seq = ?').get(seq - 1) as { seq: number; target: string };
  db.prepare("UPDATE audit SET target = 'forged' WHERE seq = ?").run(seq - 1);
  await t.rejects(d.rpc('AuditService', 'PruneAudit', { before: new Date().toISOString() }), { code: status.FAILED_PRECONDITION, details: /broken at entry \d+.*it is not pruned/ });
  const exported = await lockbox(d, ['audit', 'export']);
  t.equal(exported.code, 1);
  t.match(exported.stderr, /broken at entry \d+/);
  await t.rejects(d.rpc('AuditService', 'PruneAudit', { before: 'soon' }), { code: status.INVALID_ARGUMENT, details: /before.*not an RFC 3339 time/ });

  // A head checkpoint (signed, published on NATS) planted as the cut, the entries up to it deleted.
  db.prepare('UPDATE audit SET target = ? WHERE seq = ?').run(forgedFrom.target, forgedFrom.seq); // the chain whole again
  t.equal((await lockbox(d, ['audit', 'verify'])).code, 0);
  await createSecrets(d, 'u', 3);
  const head = await d.rpc('AuditService', 'AuditHead', {});
  await createSecrets(d, 'w', 1);
  const planted = { seq: Number(head.seq), hash: head.hash, time: head.time, public_key: head.public_key, signature: head.signature };
  db.prepare('DELETE FROM audit WHERE seq <= ?').run(planted.seq);
  db.prepare('UPDATE meta SET value = ? WHERE name = ?').run(JSON.stringify(planted), AUDIT_CUT_META);
  const plantedVerify = await lockbox(d, ['audit', 'verify']);
  t.equal(plantedVerify.code, 1, 'a head does not pass for a cut');
  t.match(plantedVerify.stdout, new RegExp(`signed cut of the last prune \\(entry ${planted.seq}\\) does not verify`));
});

t.test('prune (postgres): an older entry chained after a newer one does not take the newer one with it', async (t) => {
  const url = await freshSchema(t);
  const d = await startTestDaemon(t, { databaseUrl: url });
  t.teardown(() => d.stop());
  await createSecrets(d, 'old', 3);
  const oldest = (await d.rpc('AuditService', 'ListAudit', { limit: 100 })).entries.at(-1);
  await until('the clock moved past the old entries', () => Date.now() > Date.parse(oldest.time));
  const before = new Date().toISOString();
  await until('the clock moved past before', () => Date.now() > Date.parse(before));
  await createSecrets(d, 'new', 1);
  // A draft from a replica whose commit came late: written before `before`, chained after 'new-0'.
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  t.teardown(() => sql.end());
  const late = { time: oldest.time, tokenId: '', role: 'admin', tenant: 'default', resourceGroup: '', action: 'secret.read', target: 'old-0', version: 1, outcome: 'ok', requestId: 'late', count: 1 };
  await sql.query('INSERT INTO audit_pending (entry) VALUES ($1)', [JSON.stringify(late)]);

  const pruned = await d.rpc('AuditService', 'PruneAudit', { before });
  const entries = (await d.rpc('AuditService', 'ListAudit', { limit: 100 })).entries;
  const newer = entries.find((e: any) => e.target === 'new-0' && e.action !== 'audit.prune');
  t.ok(newer, 'the entry newer than before is kept');
  t.equal(Number(pruned.checkpoint.seq), Number(newer.seq) - 1, 'the cut is just before the first entry that is not older');
  t.ok(entries.some((e: any) => e.request_id === 'late'), 'the late older entry after it stays too');
  t.ok(entries.every((e: any) => Number(e.seq) > Number(pruned.checkpoint.seq)));
  t.equal((await lockbox(d, ['audit', 'verify'])).code, 0);
});

t.test('export: entries deleted from the start of the chain (no prune, no cut) are found, not signed over', async (t) => {
  const d = await startTestDaemon(t);
  t.teardown(() => d.stop());
  await createSecrets(d, 'a', 4);
  t.equal((await lockbox(d, ['audit', 'export'])).code, 0, 'whole: exported');
  const db = new Database(join(d.dataDir, 'lockbox.db'));
  t.teardown(() => db.close());
  db.prepare('DELETE FROM audit WHERE seq <= 2').run();
  const exported = await lockbox(d, ['audit', 'export']);
  t.equal(exported.code, 1, exported.stdout);
  t.match(exported.stderr, /broken at entry 3 .*an entry was removed or changed/);
  t.notMatch(exported.stdout, /"from"/, 'no header signed');
  const later = await lockbox(d, ['audit', 'export', '--since', '1h']);
  t.equal(later.code, 1, 'with --since too');
});

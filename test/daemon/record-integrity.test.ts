/**
 * Secret metadata is bound into each version's associated data (issue 11, item 9): rows edited in
 * the database, on SQLite and on PostgreSQL, are refused with DECRYPTION_FAILED, reported in the
 * log and left out of listings, which go on; versions sealed the old way (AD format 1) still open.
 */
import t from 'tap';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import pg from 'pg';
import sodium from 'libsodium-wrappers';
import { encodePayload, randomKey, recordAssociatedData, wrapDataKey } from '../../shared/src/crypto.js';
import { createRequest, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';

type Sql = (text: string, values?: unknown[]) => Promise<Array<Record<string, any>>>;

const canary = 'canary-integrity-9f3e';
const names = (list: { secrets: Array<{ name: string }> }) => list.secrets.map((s) => s.name);

/** Re-seals a version the way lockboxd did before metadata was bound (format 1, identity only). */
function legacyEnvelope(d: TestDaemon, row: { tenant: string; resource_group: string; name: string; uid: string; version: number }, value: string) {
  const keyring = d.daemon.keyring;
  const record = { tenant: row.tenant, resourceGroup: row.resource_group, name: row.name, uid: row.uid, version: Number(row.version) };
  const dataKey = randomKey();
  const nonce = randomKey().subarray(0, 24);
  const sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(encodePayload({ V: Buffer.from(value) }), recordAssociatedData(record), null, nonce, dataKey);
  return { wrapped: Buffer.from(wrapDataKey(dataKey, keyring.active, record)), ciphertext: Buffer.concat([nonce, sealed]), keyId: keyring.active.id };
}

type Checks = Pick<typeof t, 'equal' | 'same' | 'rejects' | 'ok' | 'notOk'>;

async function tamperAndCheck(t: Checks, d: TestDaemon, sql: Sql, placeholder: (n: number) => string, restart: () => Promise<void>) {
  for (const name of ['a-fine', 'b-mount', 'c-labels', 'd-type', 'e-downgrade', 'f-legacy', 'g-keys'])
    await d.call('CreateSecret', createRequest(name, { V: `${canary}-${name}` }));
  await d.call('UpdateSecret', { name: 'a-fine', set: { V: Buffer.from(`${canary}-a2`) } });
  const p = placeholder;
  const rows = await sql(`SELECT uid, version, tenant, resource_group, name, ad_format FROM secret_versions WHERE name = ${p(1)}`, ['f-legacy']);
  t.equal(Number(rows[0].ad_format), 2, 'new versions are sealed with AD format 2');
  const legacy = legacyEnvelope(d, rows[0] as any, `${canary}-legacy`);
  // Listed (and so verified, and remembered as verified) before the rows are edited.
  t.equal((await d.call('ListSecrets', {})).secrets.length, 7);
  t.equal((await d.call('ListVersions', { name: 'a-fine' })).versions.length, 2);

  await sql(`UPDATE secret_versions SET mount = ${p(1)} WHERE name = 'b-mount'`, [JSON.stringify({ kind: 'file', path: '../../etc', subPaths: {}, format: '' })]);
  await sql(`UPDATE secret_versions SET labels = '{not json' WHERE name = 'c-labels'`);
  await sql(`UPDATE secret_versions SET type = 'container_registry' WHERE name = 'd-type'`);
  await sql(`UPDATE secret_versions SET ad_format = 1 WHERE name = 'e-downgrade'`);
  await sql(`UPDATE secret_versions SET keys = '["V","EXTRA"]' WHERE name = 'g-keys'`);
  await sql(
    `UPDATE secret_versions SET ad_format = 1, master_key_id = ${p(1)}, wrapped_key = ${p(2)}, ciphertext = ${p(3)}, labels = '{"edited":"yes"}' WHERE name = 'f-legacy'`,
    [legacy.keyId, legacy.wrapped, legacy.ciphertext],
  );
  // The old version of a-fine: its labels edited too (it shows in history, not in the list).
  await sql(`UPDATE secret_versions SET labels = '{"x":"y"}' WHERE name = 'a-fine' AND version = 1`);
  await restart();

  const list = await d.call('ListSecrets', {});
  t.same(names(list), ['a-fine', 'f-legacy'], 'the listing goes on without the altered rows');
  const page = await d.call('ListSecrets', { limit: 1 });
  t.same(names(page), ['a-fine']);
  t.same(names(await d.call('ListSecrets', { limit: 1, cursor: page.next_cursor })), ['f-legacy'], 'paging steps over them');

  for (const name of ['b-mount', 'c-labels', 'd-type', 'e-downgrade', 'g-keys']) {
    for (const include_values of [false, true])
      await t.rejects(d.call('GetSecret', { name, include_values }), { code: status.INTERNAL, details: /failed its integrity check/ }, `${name} (values: ${include_values}) is refused`);
    await t.rejects(d.call('UpdateSecret', { name, set: { V: Buffer.from('x') } }), { code: status.INTERNAL }, `${name} is not updated from altered metadata`);
  }
  const legacyRead = await d.call('GetSecret', { name: 'f-legacy', include_values: true });
  t.equal(Buffer.from(legacyRead.data.V).toString(), `${canary}-legacy`, 'a format-1 version still opens');
  const updated = await d.call('UpdateSecret', { name: 'f-legacy', set: { V: Buffer.from(`${canary}-new`) } });
  t.equal(updated.version, 2);
  const [newRow] = await sql(`SELECT ad_format FROM secret_versions WHERE name = 'f-legacy' AND version = 2`);
  t.equal(Number(newRow.ad_format), 2, 'its next version uses format 2');

  const history = await d.call('ListVersions', { name: 'a-fine' });
  t.same(history.versions.map((v: { version: number }) => v.version), [2], 'history leaves out the altered old version');
  await t.rejects(d.call('RestoreVersion', { name: 'a-fine', version: 1 }), { code: status.INTERNAL, details: /integrity check/ });

  const reports = d.logs.filter((l) => l.includes('failed its integrity check'));
  for (const name of ['b-mount', 'c-labels', 'd-type', 'e-downgrade', 'g-keys']) t.ok(reports.some((l) => l.includes(`"name":"${name}"`)), `${name} is reported in the log`);
  t.notOk(d.logs.some((l) => l.includes(canary)), 'no value in any log line');
}

t.test('SQLite: rows edited in the database are refused, reported and skipped', async (t) => {
  const d = await startTestDaemon(t);
  t.teardown(() => d.stop());
  const db = new Database(join(d.dataDir, 'lockbox.db'));
  t.teardown(() => db.close());
  const sql: Sql = async (text, values = []) => (/^\s*SELECT/i.test(text) ? (db.prepare(text).all(...values) as any[]) : (db.prepare(text).run(...values), []));
  await tamperAndCheck(t, d, sql, () => '?', () => d.restart()); // restart: the store caches heads it read
});

t.test('PostgreSQL: rows edited in the database are refused, reported and skipped', async (t) => {
  const url = await freshSchema(t);
  const d = await startTestDaemon(t, { databaseUrl: url });
  t.teardown(() => d.stop());
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  const sql: Sql = async (text, values) => (await client.query(text, values)).rows;
  await tamperAndCheck(t, d, sql, (n) => `$${n}`, async () => {});
});

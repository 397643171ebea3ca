/**
 * The creates of one group transaction in one statement (store-postgres.ts step (8),
 * store-postgres-group-commit.ts). On a busy machine each round trip to PostgreSQL waits for its
 * backend to be scheduled, so statements run one after another per create are what limits a
 * group; this writes every plain create of the group at once, before the jobs run:
 * 1. Which creates: those of `commit()` calls without an idempotency key (their job has no
 *    savepoint of its own, so nothing but the whole transaction could undo them) that no quota
 *    lock guards (no quotas, or the default group ''). Others take the per-change path.
 * 2. One INSERT … ON CONFLICT DO NOTHING into secrets; only the heads it inserted get their
 *    notice (the outbox seq is the version's change_seq) and version row, in the same statement.
 *    A create whose name was taken (before, or earlier in this group) is ALREADY_EXISTS, as the
 *    per-change path says it.
 * 3. If the statement fails as a whole, the group transaction is rolled back and each job runs
 *    again alone (store-postgres-group-commit.ts (2)), where the failure is that job's own.
 * The results wait in `prepared` until the change's job reads them (takePrepared).
 */
import type pg from 'pg';
import { AlreadyExistsError } from '../../../shared/src/errors.js';
import { describeScope } from '../services/scope.js';
import type { Change, CommitOutcome } from './store.js';

const prepared = new WeakMap<Change, CommitOutcome>();

/** (1) Whether a change of a key-less commit can be written by the group's one statement. */
export function bulkable(change: Change): boolean {
  return change.operation === 'create' && change.record !== undefined && (!change.quotas || change.scope.resourceGroup === '');
}

/** The outcome prepared for `change`, once; undefined when it takes the per-change path. */
export function takePrepared(change: Change): CommitOutcome | undefined {
  const outcome = prepared.get(change);
  prepared.delete(change);
  return outcome;
}

/** (2), (3) Writes `creates` (all bulkable) in one statement inside the open transaction `db`. */
export async function bulkCreate(db: pg.PoolClient, creates: Change[]): Promise<void> {
  for (const c of creates) prepared.delete(c); // left from a transaction that was rolled back
  if (creates.length === 0) return;
  const columns: unknown[][] = Array.from({ length: 24 }, () => []);
  for (const c of creates) {
    const r = c.record!;
    const n = c.notice;
    [
      c.scope.tenant, c.scope.resourceGroup, c.name, r.uid, r.version, r.createTime,
      n.subject, n.tenant, n.resourceGroup, n.name, n.version, n.operation, n.time,
      r.operation, r.restoredFrom, r.type, r.template, r.description, JSON.stringify(r.labels), JSON.stringify(r.mount), JSON.stringify(r.keys),
      r.envelope.masterKeyId, Buffer.from(r.envelope.wrappedKey), Buffer.from(r.envelope.ciphertext),
    ].forEach((value, i) => columns[i].push(value));
  }
  columns.push(creates.map((c) => c.record!.envelope.adFormat));
  const { rows } = await db.query(
    `WITH x AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[],
                  $10::text[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::text[], $17::text[], $18::text[], $19::text[],
                  $20::text[], $21::text[], $22::text[], $23::bytea[], $24::bytea[], $25::int[]) WITH ORDINALITY
                AS x(tenant, resource_group, name, uid, version, create_time, n_subject, n_tenant, n_resource_group, n_name, n_version, n_operation,
                     n_time, operation, restored_from, type, template, description, labels, mount, keys, master_key_id, wrapped_key, ciphertext, ad_format, i)),
          h AS (INSERT INTO secrets (tenant, resource_group, name, uid, version, create_time)
                SELECT tenant, resource_group, name, uid, version, create_time FROM x ORDER BY i ON CONFLICT DO NOTHING RETURNING uid),
          n AS (INSERT INTO outbox (subject, tenant, resource_group, name, uid, version, operation, time)
                SELECT n_subject, n_tenant, n_resource_group, n_name, uid, n_version, n_operation, n_time FROM x JOIN h USING (uid) ORDER BY i
                RETURNING seq, uid),
          v AS (INSERT INTO secret_versions (uid, version, tenant, resource_group, name, operation, restored_from, type, template, description,
                  labels, mount, keys, create_time, change_seq, master_key_id, wrapped_key, ciphertext, ad_format)
                SELECT uid, version, tenant, resource_group, name, operation, restored_from, type, template, description,
                  labels, mount, keys, create_time, n.seq, master_key_id, wrapped_key, ciphertext, ad_format FROM x JOIN n USING (uid))
     SELECT uid, seq FROM n`,
    columns,
  );
  const seqs = new Map(rows.map((r) => [r.uid, Number(r.seq)]));
  for (const c of creates) {
    const seq = seqs.get(c.record!.uid);
    if (seq === undefined) {
      prepared.set(c, { ok: false, error: new AlreadyExistsError(`secret "${c.name}" already exists in ${describeScope(c.scope)}`, 'SECRET_EXISTS') });
    } else {
      c.record!.changeSeq = seq;
      prepared.set(c, { ok: true, seq });
    }
  }
}

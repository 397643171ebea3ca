/**
 * Every statement the SQLite store runs, prepared once when the store opens (better-sqlite3
 * compiles each at prepare time, so a typo fails at start, not on first use).
 */
import type Database from 'better-sqlite3';
import type { StoredIdempotency, StoredNotice } from './store.js';
import type { Row } from './store-rows.js';
import { versionColumns } from './store-rows.js';

export type SqliteStatements = ReturnType<typeof prepareStatements>;

export function prepareStatements(db: Database.Database) {
  return {
    head: db.prepare<[string, string, string], Row>(
      `SELECT ${versionColumns}, s.create_time AS secret_create_time FROM secrets s
       JOIN secret_versions v ON v.uid = s.uid AND v.version = s.version
       WHERE s.tenant = ? AND s.resource_group = ? AND s.name = ?`,
    ),
    headRow: db.prepare<[string, string, string], { uid: string; version: number }>(
      'SELECT uid, version FROM secrets WHERE tenant = ? AND resource_group = ? AND name = ?',
    ),
    listHeads: db.prepare<[string, string, string, number], Row>(
      `SELECT ${versionColumns}, s.create_time AS secret_create_time FROM secrets s
       JOIN secret_versions v ON v.uid = s.uid AND v.version = s.version
       WHERE s.tenant = ? AND s.resource_group = ? AND s.name > ? ORDER BY s.name LIMIT ?`,
    ),
    version: db.prepare<[string, number], Row>(
      `SELECT ${versionColumns} FROM secret_versions v WHERE v.uid = ? AND v.version = ?`,
    ),
    versions: db.prepare<[string], Row>(
      `SELECT ${versionColumns} FROM secret_versions v WHERE v.uid = ? ORDER BY v.version DESC`,
    ),
    insertSecret: db.prepare(
      'INSERT INTO secrets (tenant, resource_group, name, uid, version, create_time) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    setVersion: db.prepare('UPDATE secrets SET version = ? WHERE uid = ?'),
    deleteSecret: db.prepare('DELETE FROM secrets WHERE uid = ?'),
    deleteVersions: db.prepare('DELETE FROM secret_versions WHERE uid = ?'),
    pruneVersions: db.prepare('DELETE FROM secret_versions WHERE uid = ? AND version <= ?'),
    insertVersion: db.prepare(
      `INSERT INTO secret_versions (uid, version, tenant, resource_group, name, operation, restored_from, type,
         template, description, labels, mount, keys, create_time, change_seq, master_key_id, wrapped_key, ciphertext, ad_format)
       VALUES (@uid, @version, @tenant, @resource_group, @name, @operation, @restored_from, @type, @template,
         @description, @labels, @mount, @keys, @create_time, @change_seq, @master_key_id, @wrapped_key, @ciphertext, @ad_format)`,
    ),
    insertNotice: db.prepare(
      `INSERT INTO outbox (subject, tenant, resource_group, name, uid, version, operation, time)
       VALUES (@subject, @tenant, @resourceGroup, @name, @uid, @version, @operation, @time)`,
    ),
    pendingNotices: db.prepare<[number], StoredNotice>(
      `SELECT seq, subject, tenant, resource_group AS resourceGroup, name, uid, version, operation, time
       FROM outbox ORDER BY seq LIMIT ?`,
    ),
    deleteNotice: db.prepare('DELETE FROM outbox WHERE seq = ?'),
    getIdempotency: db.prepare<[string, string], StoredIdempotency>(
      `SELECT method, fingerprint, response, create_time AS createTime FROM idempotency WHERE tenant = ? AND key = ?`,
    ),
    insertIdempotency: db.prepare(
      'INSERT INTO idempotency (tenant, key, method, fingerprint, response, create_time) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    pruneIdempotency: db.prepare('DELETE FROM idempotency WHERE create_time < ?'),
    countByMasterKey: db.prepare<[], { id: string; n: number }>(
      'SELECT master_key_id AS id, COUNT(*) AS n FROM secret_versions GROUP BY master_key_id',
    ),
    listWrapped: db.prepare<[string, number], { uid: string; version: number; tenant: string; resource_group: string; name: string; master_key_id: string; wrapped_key: Buffer }>(
      `SELECT uid, version, tenant, resource_group, name, master_key_id, wrapped_key FROM secret_versions
       WHERE master_key_id <> ? LIMIT ?`,
    ),
    replaceWrapped: db.prepare(
      'UPDATE secret_versions SET master_key_id = ?, wrapped_key = ? WHERE uid = ? AND version = ? AND master_key_id = ?',
    ),
    insertToken: db.prepare(
      `INSERT INTO tokens (id, hash, role, tenant, resource_groups, deployment, deployment_resource_group, description, create_time,
         expire_time, revoke_time, created_by)
       VALUES (@id, @hash, @role, @tenant, @resourceGroups, @deployment, @deploymentResourceGroup, @description, @createTime,
         @expireTime, @revokeTime, @createdBy)`,
    ),
    getToken: db.prepare<[string], Record<string, string>>('SELECT * FROM tokens WHERE id = ?'),
    countTokens: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM tokens'),
    countNotices: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM outbox'),
    agentHeartbeats: db.prepare<[], { lastSeenTime: string; resyncIntervalSeconds: number }>(
      'SELECT last_seen_time AS lastSeenTime, resync_interval_seconds AS resyncIntervalSeconds FROM agents',
    ),
    listTokens: db.prepare<[string, string], Record<string, string>>('SELECT * FROM tokens WHERE (? = \'\' OR tenant = ?) ORDER BY create_time, id'),
    revokeToken: db.prepare("UPDATE tokens SET revoke_time = ? WHERE id = ? AND revoke_time = ''"),
    countTenantWide: db.prepare<[string], { n: number }>("SELECT COUNT(*) AS n FROM secrets WHERE tenant = ? AND resource_group = '*'"),
    groupInUse: db.prepare<[string, string, string, string], { n: number }>(
      `SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM secrets WHERE tenant = ? AND resource_group = ? LIMIT 1))
            + (SELECT COUNT(*) FROM (SELECT 1 FROM deployments WHERE tenant = ? AND resource_group = ? LIMIT 1)) AS n`,
    ),
    countGroups: db.prepare<[string, string], { n: number }>(
      `SELECT COUNT(*) AS n FROM (
         SELECT resource_group FROM secrets WHERE tenant = ? AND resource_group NOT IN ('', '*')
         UNION SELECT resource_group FROM deployments WHERE tenant = ? AND resource_group NOT IN ('', '*'))`,
    ),
    getDeployment: db.prepare<[string, string, string], Row>('SELECT * FROM deployments WHERE tenant = ? AND resource_group = ? AND name = ?'),
    listDeployments: db.prepare<[string, string], Row>('SELECT * FROM deployments WHERE tenant = ? AND resource_group = ? ORDER BY name'),
    deploymentsListing: db.prepare<[string, string], Row>(
      `SELECT d.* FROM deployment_secrets r JOIN deployments d
         ON d.tenant = r.tenant AND d.resource_group = r.resource_group AND d.name = r.deployment
       WHERE r.tenant = ? AND r.secret = ? ORDER BY d.resource_group, d.name`,
    ),
    insertDeployment: db.prepare(
      `INSERT INTO deployments (tenant, resource_group, name, uid, version, secrets, description, labels, create_time, update_time)
       VALUES (@tenant, @resourceGroup, @name, @uid, @version, @secrets, @description, @labels, @createTime, @updateTime)`,
    ),
    updateDeployment: db.prepare(
      `UPDATE deployments SET version = @version, secrets = @secrets, description = @description, labels = @labels, update_time = @updateTime
       WHERE tenant = @tenant AND resource_group = @resourceGroup AND name = @name`,
    ),
    deleteDeployment: db.prepare('DELETE FROM deployments WHERE tenant = ? AND resource_group = ? AND name = ?'),
    deleteDeploymentRefs: db.prepare('DELETE FROM deployment_secrets WHERE tenant = ? AND resource_group = ? AND deployment = ?'),
    insertDeploymentRef: db.prepare('INSERT OR IGNORE INTO deployment_secrets (tenant, secret, resource_group, deployment) VALUES (?, ?, ?, ?)'),
    upsertAgent: db.prepare(
      `INSERT INTO agents (agent_id, tenant, deployment, deployment_resource_group, token_id, last_seen_time, resync_interval_seconds, problems)
       VALUES (@agentId, @tenant, @deployment, @deploymentResourceGroup, @tokenId, @lastSeenTime, @resyncIntervalSeconds, @problems)
       ON CONFLICT (agent_id) DO UPDATE SET tenant = excluded.tenant, deployment = excluded.deployment,
         deployment_resource_group = excluded.deployment_resource_group, token_id = excluded.token_id,
         last_seen_time = excluded.last_seen_time, resync_interval_seconds = excluded.resync_interval_seconds, problems = excluded.problems`,
    ),
    /** What the agent no longer holds: its rows other than the [resource group, name] pairs listed (a JSON array). */
    deleteAppliedExcept: db.prepare(
      `DELETE FROM agent_applied WHERE agent_id = ? AND NOT EXISTS
         (SELECT 1 FROM json_each(?) j WHERE json_extract(j.value, '$[0]') = resource_group AND json_extract(j.value, '$[1]') = name)`,
    ),
    upsertApplied: db.prepare(
      `INSERT INTO agent_applied (agent_id, tenant, resource_group, name, uid, version, applied_time)
       VALUES (@agentId, @tenant, @resourceGroup, @name, @uid, @version, @appliedTime)
       ON CONFLICT (tenant, resource_group, name, agent_id) DO UPDATE SET uid = excluded.uid, version = excluded.version, applied_time = excluded.applied_time`,
    ),
    agentsHolding: db.prepare<[string, string, string], Record<string, string | number>>(
      `SELECT a.*, g.deployment, g.deployment_resource_group, g.token_id, g.last_seen_time, g.resync_interval_seconds, g.problems
       FROM agent_applied a JOIN agents g ON g.agent_id = a.agent_id
       WHERE a.tenant = ? AND a.resource_group = ? AND a.name = ? ORDER BY a.agent_id`,
    ),
    lastAudit: db.prepare<[], { seq: number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1'),
    insertAudit: db.prepare(
      `INSERT INTO audit (seq, time, token_id, role, tenant, resource_group, action, target, version, outcome, request_id, count, prev_hash, hash)
       VALUES (@seq, @time, @tokenId, @role, @tenant, @resourceGroup, @action, @target, @version, @outcome, @requestId, @count, @prevHash, @hash)`,
    ),
    listAudit: db.prepare<[number, string, string, string, string, string, string, number], Record<string, string | number>>(
      `SELECT * FROM audit WHERE seq > ? AND (? = '' OR tenant = ?) AND (? = '' OR action = ?) AND (? = '' OR target = ?)
       ORDER BY seq LIMIT ?`,
    ),
  };
}

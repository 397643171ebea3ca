/**
 * What agents report, on PostgreSQL (the rollout status: who holds which version since when,
 * with their problems); store-postgres.ts is the facade.
 * 1. A window of reports is one transaction, in agent id order (two replicas writing overlapping
 *    windows cannot deadlock), each report in its own savepoint: one the database refuses is
 *    rolled back alone and named, the others kept.
 * 2. A report replaces the agent's row and its applied versions: rows it still holds are updated
 *    in place, rows it no longer holds are deleted.
 * 3. Agents silent since a time are swept by every replica (idempotent deletes).
 */
import type pg from 'pg';
import { SavepointLost, type PostgresPool } from './store-postgres-pool.js';
import { toAgentHolding } from './store-rows.js';
import type { AgentReport, AppliedRecord } from './store.js';

export class PostgresAgents {
  constructor(private readonly db: PostgresPool) {}

  async report(reports: Array<{ report: AgentReport; applied: AppliedRecord[] }>): Promise<void> {
    if (reports.length === 0) return;
    // In agent id order, so two replicas writing overlapping batches cannot deadlock.
    const sorted = [...reports].sort((a, b) => (a.report.agentId < b.report.agentId ? -1 : a.report.agentId > b.report.agentId ? 1 : 0));
    // One report that fails (a value the database refuses) is rolled back alone, to its savepoint:
    // the others of the window are still written, and the failure is thrown once they are.
    const failed: Array<{ agentId: string; error: unknown }> = [];
    await this.db.transaction(async (db) => {
      for (const { report, applied } of sorted)
        await this.db.savepoint(db, () => this.writeAgentReport(db, report, applied), 'report').catch((error: unknown) => {
          if (error instanceof SavepointLost) throw error; // the transaction is broken: nothing is kept
          failed.push({ agentId: report.agentId, error });
        });
    });
    if (failed.length)
      throw new Error(`${failed.length} of ${sorted.length} agent reports were not written (agent ids ${failed.map((f) => f.agentId).join(', ')}); the others were`, { cause: failed[0].error });
  }

  private async writeAgentReport(db: pg.PoolClient, report: AgentReport, applied: AppliedRecord[]): Promise<void> {
    await db.query(
      `INSERT INTO agents (agent_id, tenant, deployment, deployment_resource_group, token_id, last_seen_time, resync_interval_seconds, problems)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (agent_id) DO UPDATE SET tenant = excluded.tenant, deployment = excluded.deployment,
         deployment_resource_group = excluded.deployment_resource_group, token_id = excluded.token_id,
         last_seen_time = excluded.last_seen_time, resync_interval_seconds = excluded.resync_interval_seconds, problems = excluded.problems`,
      [report.agentId, report.tenant, report.deployment, report.deploymentResourceGroup, report.tokenId, report.lastSeenTime, report.resyncIntervalSeconds, JSON.stringify(report.problems)],
    );
    for (const a of applied)
      await db.query(
        `INSERT INTO agent_applied (agent_id, tenant, resource_group, name, uid, version, applied_time) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant, resource_group, name, agent_id) DO UPDATE SET uid = excluded.uid, version = excluded.version, applied_time = excluded.applied_time`,
        [a.agentId, a.tenant, a.resourceGroup, a.name, a.uid, a.version, a.appliedTime],
      );
    await db.query(
      'DELETE FROM agent_applied WHERE agent_id = $1 AND (resource_group, name) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))',
      [report.agentId, applied.map((a) => a.resourceGroup), applied.map((a) => a.name)],
    );
  }

  async holding(tenant: string, resourceGroup: string, name: string): Promise<Array<AppliedRecord & { report: AgentReport }>> {
    const { rows } = await this.db.query(
      `SELECT a.*, g.deployment, g.deployment_resource_group, g.token_id, g.last_seen_time, g.resync_interval_seconds, g.problems
       FROM agent_applied a JOIN agents g ON g.agent_id = a.agent_id
       WHERE a.tenant = $1 AND a.resource_group = $2 AND a.name = $3 ORDER BY a.agent_id COLLATE "C"`,
      [tenant, resourceGroup, name],
    );
    return rows.map(toAgentHolding);
  }

  async prune(silentSince: string): Promise<number> {
    // Every replica sweeps; the deletes are idempotent, so replicas racing each other is harmless.
    return this.db.transaction(async (db) => {
      await db.query('DELETE FROM agent_applied WHERE agent_id IN (SELECT agent_id FROM agents WHERE last_seen_time < $1)', [silentSince]);
      return (await db.query('DELETE FROM agents WHERE last_seen_time < $1', [silentSince])).rowCount ?? 0;
    });
  }

  async heartbeats(): Promise<Array<{ lastSeenTime: string; resyncIntervalSeconds: number }>> {
    const { rows } = await this.db.query('SELECT last_seen_time, resync_interval_seconds FROM agents');
    return rows.map((r) => ({ lastSeenTime: r.last_seen_time, resyncIntervalSeconds: Number(r.resync_interval_seconds) }));
  }
}

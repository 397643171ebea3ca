/**
 * What lockbox-agent calls with its agent token (its deployment's configuration and secrets, its
 * status reports and push acknowledgements), and the rollout status that `lockbox status NAME`
 * reads. Reports are believed only as far as the token allows (issue 11.6):
 * 1. the deployment and every scope come from the token and from how the deployment resolves
 *    each name now, never from the report;
 * 2. a report naming a secret the deployment does not resolve is refused;
 * 3. at most `maxAgentsPerDeployment` agent ids report for one deployment at a time (on this
 *    daemon); a new id past it is refused with AGENT_LIMIT until one of them goes silent;
 * 4. an agent silent for three resync intervals is stale; after AGE_OUT_INTERVALS it is left out
 *    of status altogether (and frees its place under the cap after three);
 * 5. agent ids are stored qualified by the deployment (`storedAgentId`), so one deployment's
 *    token cannot overwrite what another deployment's agent of the same id reported;
 * 6. retention (issue 13.6): a one-shot run (`lockbox-agent once`, `one_shot` on its resync or
 *    report) is stored with resync interval 0: it is listed as a run with the version it applied
 *    and when, never stale, never counted among the live agents. A one-shot unary report is not
 *    kept in the roster of step (3) (it holds nothing open); a session is, whatever it says, for
 *    as long as it is open (released when a one-shot session closes), so `one_shot` on a resync
 *    cannot hold sessions past the cap. Any agent silent longer than --agent-retention leaves status at once and is
 *    deleted by the daemon's sweep (pruneSilent), on every replica against the shared store.
 */
import type { Principal } from '../security/auth.js';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError, ResourceExhaustedError } from '../../../shared/src/errors.js';
import { CHANGES_PREFIX, deploymentSubject, encodeSubjectToken } from '../../../shared/src/subject.js';
import { checkSecretName } from '../../../shared/src/validate.js';
import type { CallContext } from './context.js';
import { deploymentMessage, type ScopeMessage } from './messages.js';
import { scopeOf } from './scope.js';
import type { SecretsService } from './service-secrets.js';
import type { AgentReport, AppliedRecord, DeploymentRecord, Store } from '../store/store.js';

const MAX_PROBLEMS = 100;
/** Step (4): silent this many resync intervals, an agent is no longer listed. */
export const AGE_OUT_INTERVALS = 10;
/** How a NACK reason is kept among the agent's problems (the store keeps a list of problems). */
const NACK_PREFIX = 'NACK: ';
const AGENT_ID = /^[\w.:/@-]{1,200}$/;

/** Step (5): "|" never occurs in an agent id, so the id shown is what follows the last one. */
function storedAgentId(deployment: DeploymentRecord, agentId: string): string {
  return `${JSON.stringify([deployment.tenant, deployment.resourceGroup, deployment.name])}|${agentId}`;
}

function shownAgentId(stored: string): string {
  return stored.slice(stored.lastIndexOf('|') + 1);
}
/** How long status reports are kept before they are written together. */
const REPORT_WRITE_MS = 200;

interface ReportRequest {
  agent_id?: string;
  applied?: Array<{ name?: string; resource_group?: string; uid?: string; version?: number; applied_time?: string }>;
  resync_interval_seconds?: number;
  problems?: string[];
  one_shot?: boolean;
}

/**
 * Status reports are answered when taken and written together every REPORT_WRITE_MS, the latest
 * of each agent: a rollout to N agents costs the database one write rather than N, each a commit
 * whose fsync would stall the daemon while the agents wait for their fetches. A crash can lose
 * the last window; each agent reports again after every resync. SecretStatus writes what is kept
 * first, so it sees every report this daemon took; the daemon writes the rest when it stops.
 */
export class AgentService {
  private readonly pendingReports = new Map<string, { report: AgentReport; applied: AppliedRecord[] }>();
  private reportTimer: NodeJS.Timeout | undefined;
  private reportsWritten: Promise<void> = Promise.resolve();
  /** Step (3): per deployment, each agent id and when it was last heard (ms) and its interval. */
  private readonly roster = new Map<string, Map<string, { seen: number; intervalMs: number }>>();

  constructor(
    private readonly store: Store,
    private readonly secrets: SecretsService,
    private readonly natsUrl: string,
    private readonly onBackgroundError: (error: Error) => void = () => {},
    private readonly maxAgentsPerDeployment = 1000,
    /** Step (6): agents silent longer than this leave status; 0 keeps them. */
    private readonly retentionMs = 0,
  ) {}

  /** Step (6): deletes agents silent longer than the retention; returns how many (0 when it is off). */
  async pruneSilent(now = Date.now()): Promise<number> {
    if (this.retentionMs <= 0) return 0;
    await this.flushReports(); // a report taken but not written yet is not silence
    return this.store.pruneAgents(new Date(now - this.retentionMs).toISOString());
  }

  /**
   * Step (3): checks the agent id and interval and counts the agent for its token's deployment;
   * throws AGENT_LIMIT when the deployment already has its share of live agents. `rostered`
   * false (step 6: a one-shot unary report) checks the cap without taking a place.
   */
  admit(principal: Principal, agentId: string, intervalSeconds: number, rostered = true): void {
    if (principal.role !== 'agent') throw new PermissionDeniedError('this call is for agent tokens (lockbox token create --role agent)');
    if (!AGENT_ID.test(agentId)) throw new InvalidArgumentError('agent_id', 'must be 1-200 letters, digits or . _ - : / @');
    if (!Number.isInteger(intervalSeconds) || intervalSeconds < 1 || intervalSeconds > 86_400) throw new InvalidArgumentError('resync_interval_seconds', 'must be 1 to 86400');
    const key = JSON.stringify([principal.tenant, principal.deploymentResourceGroup, principal.deployment]);
    let agents = this.roster.get(key);
    if (!agents) this.roster.set(key, (agents = new Map()));
    const now = Date.now();
    if (!agents.has(agentId) && agents.size >= this.maxAgentsPerDeployment) {
      for (const [id, a] of agents) if (now - a.seen > 3 * a.intervalMs) agents.delete(id);
      if (agents.size >= this.maxAgentsPerDeployment)
        throw new ResourceExhaustedError(
          `deployment "${principal.deployment}" already has ${agents.size} agents reporting, the most --max-agents-per-deployment allows; agent "${agentId}" is refused until one goes silent`,
          'AGENT_LIMIT',
        );
    }
    if (rostered) agents.set(agentId, { seen: now, intervalMs: intervalSeconds * 1000 }); // (6)
  }

  /** Step (6): a one-shot session closed; its place under the cap is free at once. */
  release(principal: Principal, agentId: string): void {
    const key = JSON.stringify([principal.tenant, principal.deploymentResourceGroup, principal.deployment]);
    const agents = this.roster.get(key);
    agents?.delete(agentId);
    if (agents?.size === 0) this.roster.delete(key);
  }

  /** Steps (1)-(2): what the agent says it has on disk, each name resolved by the token's deployment. */
  private async appliedOf(deployment: DeploymentRecord, agentId: string, applied: ReportRequest['applied']): Promise<AppliedRecord[]> {
    const scope = { tenant: deployment.tenant, resourceGroup: deployment.resourceGroup };
    const records: AppliedRecord[] = [];
    for (const [i, a] of (applied ?? []).entries()) {
      checkSecretName(a.name ?? '', `applied[${i}].name`);
      if (!deployment.secrets.includes(a.name!)) throw new InvalidArgumentError(`applied[${i}].name`, `deployment "${deployment.name}" does not mount "${a.name}"`);
      const head = await this.secrets.resolveHead(scope, a.name!);
      if (!head) throw new InvalidArgumentError(`applied[${i}].name`, `deployment "${deployment.name}" resolves no secret "${a.name}" now`);
      const version = a.version ?? 0;
      if (!Number.isSafeInteger(version) || version < 0) throw new InvalidArgumentError(`applied[${i}].version`, 'must be a whole number, 0 or more');
      const time = a.applied_time && !Number.isNaN(Date.parse(a.applied_time)) ? new Date(a.applied_time).toISOString() : new Date().toISOString();
      records.push({ agentId: storedAgentId(deployment, agentId), tenant: deployment.tenant, resourceGroup: head.resourceGroup, name: a.name!, uid: (a.uid ?? '').slice(0, 64), version, appliedTime: time });
    }
    return records;
  }

  private keep(report: AgentReport, applied: AppliedRecord[]): void {
    this.pendingReports.set(report.agentId, { report, applied });
    this.reportTimer ??= setTimeout(() => void this.flushReports().catch(this.onBackgroundError), REPORT_WRITE_MS);
  }

  /** An agent's ACK or NACK on its session: its rollout report. */
  async acknowledge(
    ctx: CallContext,
    agentId: string,
    intervalSeconds: number,
    ack: { applied?: ReportRequest['applied']; nack_reason?: string; problems?: string[] },
    oneShot = false,
  ): Promise<void> {
    const deployment = await this.deploymentOf(ctx);
    this.admit(ctx.principal, agentId, intervalSeconds); // (6) an open session holds its place, one-shot or not
    const applied = await this.appliedOf(deployment, agentId, ack.applied);
    const problems = (ack.problems ?? []).slice(0, MAX_PROBLEMS).map((p) => p.slice(0, 500));
    if (ack.nack_reason) problems.unshift(NACK_PREFIX + ack.nack_reason.slice(0, 500));
    this.keep(this.reportOf(ctx, deployment, agentId, oneShot ? 0 : intervalSeconds, problems), applied);
  }

  /** `interval` 0: a one-shot run (step (6)). */
  private reportOf(ctx: CallContext, deployment: DeploymentRecord, agentId: string, interval: number, problems: string[]): AgentReport {
    return {
      agentId: storedAgentId(deployment, agentId),
      tenant: deployment.tenant,
      deployment: deployment.name,
      deploymentResourceGroup: deployment.resourceGroup,
      tokenId: ctx.principal.tokenId,
      lastSeenTime: new Date().toISOString(),
      resyncIntervalSeconds: interval,
      problems,
    };
  }

  /** Writes the reports kept so far (and waits for a write in progress). */
  flushReports(): Promise<void> {
    clearTimeout(this.reportTimer);
    this.reportTimer = undefined;
    const batch = [...this.pendingReports.values()];
    this.pendingReports.clear();
    const previous = this.reportsWritten;
    const written = batch.length ? this.store.reportAgents(batch) : Promise.resolve(); // one transaction
    this.reportsWritten = written.catch(() => {}); // the next flush waits for this one, whatever its outcome
    return previous.then(() => written);
  }

  private async deploymentOf(ctx: CallContext): Promise<DeploymentRecord> {
    const { principal } = ctx;
    if (principal.role !== 'agent') throw new PermissionDeniedError('this call is for agent tokens (lockbox token create --role agent)');
    const deployment = await this.store.getDeployment({ tenant: principal.tenant, resourceGroup: principal.deploymentResourceGroup }, principal.deployment);
    if (!deployment) throw new NotFoundError(`deployment "${principal.deployment}" of this agent token no longer exists`, 'DEPLOYMENT_NOT_FOUND');
    return deployment;
  }

  async config(ctx: CallContext) {
    const deployment = await this.deploymentOf(ctx);
    const resolved: Record<string, string> = {};
    for (const name of deployment.secrets) resolved[name] = (await this.secrets.resolveHead(deployment, name))?.resourceGroup ?? '';
    const tenant = encodeSubjectToken(deployment.tenant);
    return {
      deployment: deploymentMessage(deployment, resolved),
      nats_url: this.natsUrl,
      subjects: [
        `${CHANGES_PREFIX}.${tenant}.${encodeSubjectToken(deployment.resourceGroup)}.>`,
        `${CHANGES_PREFIX}.${tenant}.${encodeSubjectToken('*')}.>`,
        deploymentSubject(deployment.tenant, deployment.resourceGroup, deployment.name),
      ],
    };
  }

  /** Every listed secret with its values (each read audited), or marked missing. */
  async fetch(request: { names?: string[] }, ctx: CallContext) {
    const deployment = await this.deploymentOf(ctx);
    const names = request.names?.length ? request.names : deployment.secrets;
    for (const name of names)
      if (!deployment.secrets.includes(name)) throw new PermissionDeniedError(`deployment "${deployment.name}" does not mount "${name}"`);
    // In parallel, so the audit records of all the reads share one group commit.
    const secrets = await Promise.all(
      names.map(async (name) => {
        const head = await this.secrets.resolveHead(deployment, name);
        if (!head) return { name, missing: true };
        const secret = await this.secrets.get({ scope: { tenant: head.tenant, resource_group: head.resourceGroup }, name, include_values: true }, ctx);
        return { name, secret, missing: false };
      }),
    );
    return { secrets, change_seq: Math.max(0, ...secrets.map((s) => s.secret?.change_seq ?? 0)) };
  }

  /** ReportStatus (the unary call, and `report` on a session): as an ACK without a nonce. */
  async report(request: ReportRequest, ctx: CallContext) {
    const deployment = await this.deploymentOf(ctx);
    const agentId = request.agent_id ?? '';
    const interval = request.resync_interval_seconds ?? 60;
    const oneShot = request.one_shot === true;
    this.admit(ctx.principal, agentId, interval, !oneShot); // (6) a unary one-shot report holds nothing open
    const applied = await this.appliedOf(deployment, agentId, request.applied);
    const problems = (request.problems ?? []).slice(0, MAX_PROBLEMS).map((p) => p.slice(0, 500));
    this.keep(this.reportOf(ctx, deployment, agentId, oneShot ? 0 : interval, problems), applied);
    return {};
  }

  /** Which agents hold which version of a secret; steps (4) and (6). */
  async status(request: { scope?: ScopeMessage; name?: string }, ctx: CallContext) {
    const scope = this.secrets.resolveScope(request.scope, ctx, 'read-metadata');
    const name = request.name ?? '';
    checkSecretName(name);
    const head = await this.store.getHead(scope, name);
    if (!head) throw new NotFoundError(`secret "${name}" not found`, 'SECRET_NOT_FOUND');
    await this.flushReports().catch(this.onBackgroundError); // a failed write of reports is logged; the status shows what is stored
    const now = Date.now();
    const silentFor = (a: { report: AgentReport }) => now - Date.parse(a.report.lastSeenTime);
    const oneShot = (a: { report: AgentReport }) => a.report.resyncIntervalSeconds === 0;
    const agents = (await this.store.agentsHolding(scope.tenant, scope.resourceGroup, name))
      .filter((a) => this.retentionMs <= 0 || silentFor(a) <= this.retentionMs)
      .filter((a) => oneShot(a) || silentFor(a) <= AGE_OUT_INTERVALS * a.report.resyncIntervalSeconds * 1000)
      .map((a) => ({
        agent_id: shownAgentId(a.agentId),
        deployment: a.report.deployment,
        deployment_resource_group: a.report.deploymentResourceGroup,
        version: a.uid === head.uid ? a.version : 0,
        applied_time: a.appliedTime,
        last_seen_time: a.report.lastSeenTime,
        stale: !oneShot(a) && silentFor(a) > 3 * a.report.resyncIntervalSeconds * 1000,
        one_shot: oneShot(a),
        problems: a.report.problems.filter((p) => !p.startsWith(NACK_PREFIX)),
        nack_reason: a.report.problems.find((p) => p.startsWith(NACK_PREFIX))?.slice(NACK_PREFIX.length) ?? '',
      }));
    const live = agents.filter((a) => !a.stale && !a.one_shot);
    const current = live.filter((a) => a.version === head.version).length;
    const stale = agents.filter((a) => a.stale).length;
    const runs = agents.length - live.length - stale;
    return {
      name,
      resource_group: scope.resourceGroup,
      current_version: head.version,
      agents,
      current,
      total: live.length,
      summary: `${current}/${live.length} agents on v${head.version}${stale ? ` (${stale} stale)` : ''}${runs ? `, ${runs} one-shot run${runs > 1 ? 's' : ''}` : ''}`,
    };
  }

  /**
   * For a tenant-wide secret: each resource group with a deployment that mounts it (and has no
   * secret of its own by that name), and whether every live agent there holds the current
   * version. A group whose agents have not reported yet is false.
   */
  async replicationByResourceGroup(request: { scope?: ScopeMessage; name?: string }, ctx: CallContext): Promise<Record<string, boolean>> {
    const status = await this.status(request, ctx);
    const scope = scopeOf(request.scope);
    const groups = new Set((await this.secrets.deploymentsMounting(scope, status.name)).map((d) => d.resourceGroup));
    const result: Record<string, boolean> = {};
    for (const group of [...groups].sort()) {
      const live = status.agents.filter((a) => a.deployment_resource_group === group && !a.stale && !a.one_shot); // (6) a run follows no change
      result[group] = live.length > 0 && live.every((a) => a.version === status.current_version);
    }
    return result;
  }
}

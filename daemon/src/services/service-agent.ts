/**
 * What lockbox-agent calls with its agent token (its deployment's configuration and secrets, its
 * status reports), and the rollout status that `lockbox status NAME` reads.
 */
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../../../shared/src/errors.js';
import { CHANGES_PREFIX, deploymentSubject, encodeSubjectToken } from '../../../shared/src/subject.js';
import { checkSecretName } from '../../../shared/src/validate.js';
import type { CallContext } from './context.js';
import { deploymentMessage, type ScopeMessage } from './messages.js';
import { scopeOf } from './scope.js';
import type { SecretsService } from './service-secrets.js';
import type { AgentReport, AppliedRecord, DeploymentRecord, Store } from '../store/store.js';

const MAX_PROBLEMS = 100;
/** How long status reports are kept before they are written together. */
const REPORT_WRITE_MS = 200;

interface ReportRequest {
  agent_id?: string;
  applied?: Array<{ name?: string; resource_group?: string; uid?: string; version?: number; applied_time?: string }>;
  resync_interval_seconds?: number;
  problems?: string[];
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

  constructor(
    private readonly store: Store,
    private readonly secrets: SecretsService,
    private readonly natsUrl: string,
    private readonly onBackgroundError: (error: Error) => void = () => {},
  ) {}

  /** Writes the reports kept so far (and waits for a write in progress). */
  flushReports(): Promise<void> {
    clearTimeout(this.reportTimer);
    this.reportTimer = undefined;
    const batch = [...this.pendingReports.values()];
    this.pendingReports.clear();
    const previous = this.reportsWritten;
    // Issued in one turn, so the SQLite store commits them in one transaction.
    const written = Promise.all(batch.map(({ report, applied }) => this.store.reportAgent(report, applied))).then(() => {});
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

  async report(request: ReportRequest, ctx: CallContext) {
    const deployment = await this.deploymentOf(ctx);
    const agentId = request.agent_id ?? '';
    if (!/^[\w.:/@-]{1,200}$/.test(agentId)) throw new InvalidArgumentError('agent_id', 'must be 1-200 letters, digits or . _ - : / @');
    const problems = (request.problems ?? []).slice(0, MAX_PROBLEMS).map((p) => p.slice(0, 500));
    const interval = request.resync_interval_seconds ?? 60;
    if (!Number.isInteger(interval) || interval < 1 || interval > 86_400) throw new InvalidArgumentError('resync_interval_seconds', 'must be 1 to 86400');
    const applied = (request.applied ?? []).map((a, i) => {
      checkSecretName(a.name ?? '', `applied[${i}].name`);
      if (!deployment.secrets.includes(a.name!)) throw new InvalidArgumentError(`applied[${i}].name`, `deployment "${deployment.name}" does not mount "${a.name}"`);
      return {
        agentId,
        tenant: deployment.tenant,
        resourceGroup: a.resource_group ?? '',
        name: a.name!,
        uid: a.uid ?? '',
        version: a.version ?? 0,
        appliedTime: a.applied_time || new Date().toISOString(),
      };
    });
    const report: AgentReport = {
      agentId,
      tenant: deployment.tenant,
      deployment: deployment.name,
      deploymentResourceGroup: deployment.resourceGroup,
      tokenId: ctx.principal.tokenId,
      lastSeenTime: new Date().toISOString(),
      resyncIntervalSeconds: interval,
      problems,
    };
    this.pendingReports.set(agentId, { report, applied });
    this.reportTimer ??= setTimeout(() => void this.flushReports().catch(this.onBackgroundError), REPORT_WRITE_MS);
    return {};
  }

  /** Which agents hold which version of a secret; agents silent for three intervals are stale. */
  async status(request: { scope?: ScopeMessage; name?: string }, ctx: CallContext) {
    const scope = this.secrets.resolveScope(request.scope, ctx, 'read-metadata');
    const name = request.name ?? '';
    checkSecretName(name);
    const head = await this.store.getHead(scope, name);
    if (!head) throw new NotFoundError(`secret "${name}" not found`, 'SECRET_NOT_FOUND');
    await this.flushReports().catch(this.onBackgroundError); // a failed write of reports is logged; the status shows what is stored
    const now = Date.now();
    const agents = (await this.store.agentsHolding(scope.tenant, scope.resourceGroup, name)).map((a) => ({
      agent_id: a.agentId,
      deployment: a.report.deployment,
      deployment_resource_group: a.report.deploymentResourceGroup,
      version: a.uid === head.uid ? a.version : 0,
      applied_time: a.appliedTime,
      last_seen_time: a.report.lastSeenTime,
      stale: now - Date.parse(a.report.lastSeenTime) > 3 * a.report.resyncIntervalSeconds * 1000,
      problems: a.report.problems,
    }));
    const live = agents.filter((a) => !a.stale);
    const current = live.filter((a) => a.version === head.version).length;
    const stale = agents.length - live.length;
    return {
      name,
      resource_group: scope.resourceGroup,
      current_version: head.version,
      agents,
      current,
      total: live.length,
      summary: `${current}/${live.length} agents on v${head.version}${stale ? ` (${stale} stale)` : ''}`,
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
      const live = status.agents.filter((a) => a.deployment_resource_group === group && !a.stale);
      result[group] = live.length > 0 && live.every((a) => a.version === status.current_version);
    }
    return result;
  }
}

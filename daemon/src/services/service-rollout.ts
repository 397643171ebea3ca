/**
 * The rollout of one deployment: for each secret it mounts, which of the deployment's agents hold
 * which version, when they applied it, and whether they are stale or report a problem. Built from
 * the per-secret status that `lockbox status NAME` reads (AgentService.status), so both agree on
 * what an agent holds; only the deployment's own agents are counted here.
 */
import { LockboxError } from '../../../shared/src/errors.js';
import type { CallContext } from './context.js';
import type { ScopeMessage } from './messages.js';
import type { AgentService } from './service-agent.js';
import type { DeploymentsService } from './service-deployments.js';

export interface DeploymentRolloutSecret {
  name: string;
  /** Where the secret resolves for this deployment: its own resource group or "*"; "" also when missing. */
  resource_group: string;
  missing: boolean;
  current_version: number;
  /** `one_shot`: a `lockbox-agent once` run (service-agent.ts step (6)), never stale nor live. */
  agents: Array<{ agent_id: string; version: number; applied_time: string; last_seen_time: string; stale: boolean; one_shot: boolean; problems: string[] }>;
  /** Live agents (sidecars not stale) on the current version, and live agents in all. */
  current: number;
  total: number;
  /** "1/1 on v2", plus "(n stale)" when some agents stopped reporting. */
  summary: string;
}

function notFoundAsUndefined(error: unknown): undefined {
  if (error instanceof LockboxError && error.kind === 'NOT_FOUND') return undefined;
  throw error;
}

export class RolloutService {
  constructor(
    private readonly deployments: DeploymentsService,
    private readonly agents: AgentService,
  ) {}

  async deployment(request: { scope?: ScopeMessage; name?: string }, ctx: CallContext) {
    const deployment = await this.deployments.get(request, ctx); // checks the name and that the caller may read it
    const { tenant, resource_group: group } = deployment.scope;
    const secrets: DeploymentRolloutSecret[] = [];
    for (const name of deployment.secrets) {
      // A missing secret resolves to "" (the deployment may outlive a forced delete).
      const resolvedGroup = deployment.resolved[name] ?? '';
      const status = resolvedGroup === '' && group !== '' ? undefined : await this.agents.status({ scope: { tenant, resource_group: resolvedGroup }, name }, ctx).catch(notFoundAsUndefined);
      if (!status) {
        secrets.push({ name, resource_group: '', missing: true, current_version: 0, agents: [], current: 0, total: 0, summary: 'not found' });
        continue;
      }
      const agents = status.agents
        .filter((a) => a.deployment === deployment.name && a.deployment_resource_group === group)
        .map(({ agent_id, version, applied_time, last_seen_time, stale, one_shot, problems }) => ({ agent_id, version, applied_time, last_seen_time, stale, one_shot, problems }));
      const live = agents.filter((a) => !a.stale && !a.one_shot);
      const current = live.filter((a) => a.version === status.current_version).length;
      const stale = agents.filter((a) => a.stale).length;
      const runs = agents.length - live.length - stale;
      secrets.push({
        name,
        resource_group: resolvedGroup,
        missing: false,
        current_version: status.current_version,
        agents,
        current,
        total: live.length,
        summary: `${current}/${live.length} on v${status.current_version}${stale ? ` (${stale} stale)` : ''}${runs ? `, ${runs} one-shot run${runs > 1 ? 's' : ''}` : ''}`,
      });
    }
    return { name: deployment.name, resource_group: group, version: deployment.version, secrets, time: new Date().toISOString() };
  }
}

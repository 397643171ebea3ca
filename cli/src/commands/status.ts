/** `lockbox status NAME`: which agents hold which version of a secret (the rollout status). */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { scopeOf, withScope } from '../flags.js';
import { renderTable } from '../output.js';

export function addStatusCommand(program: Command, { rpc, print }: CliContext): void {
  withScope(program.command('status <name>'))
    .description('which agents hold which version of a secret (rollout status)')
    .action(async (name: string, o) => {
      const r = await rpc('AgentService', 'SecretStatus', { scope: scopeOf(o), name });
      print(r, () =>
        renderTable(
          ['AGENT', 'DEPLOYMENT', 'VERSION', 'APPLIED', 'LAST SEEN', 'STATE'],
          (r.agents ?? []).map((a: any) => [
            a.agent_id,
            `${a.deployment_resource_group || '(main)'}/${a.deployment}`,
            a.version ? `v${a.version}` : 'other',
            a.applied_time,
            a.last_seen_time,
            a.one_shot ? 'one-shot run' : a.stale ? 'stale' : a.version === r.current_version ? 'current' : 'behind',
          ]),
        ) + `${r.summary}\n`,
        () => (r.agents ?? []).map((a: any) => `agent/${a.agent_id}`),
      );
    });
}

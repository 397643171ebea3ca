/**
 * The rules that tie a secret to the secrets and deployments around it, read from the store:
 * - precedence: in a resource group, the group's own secret wins over a tenant-wide one of the
 *   same name (reads resolve that way, and so do deployments);
 * - shadowing: only a tenant admin may create or change such a shadow; an rg-admin is refused, so
 *   a group admin can never override what the tenant set for everyone;
 * - deployments still fit: a new version must not clash with the other secrets of any deployment
 *   that mounts it (same file, same env key).
 */
import { FailedPreconditionError, PermissionDeniedError } from '../../../shared/src/errors.js';
import { mountCollisions } from '../../../shared/src/layout.js';
import type { MountSpec } from '../../../shared/src/validate.js';
import type { DeploymentRecord, ScopeKey, SecretHead, Store } from '../store/store.js';
import type { CallContext } from './context.js';
import { describeScope } from './scope.js';

export class SecretScopeRules {
  constructor(private readonly store: Store) {}

  /** The precedence rule for reads: the scope's own secret, then the tenant-wide one. */
  async resolveHead(scope: ScopeKey, name: string): Promise<SecretHead | undefined> {
    const own = await this.store.getHead(scope, name);
    if (own || scope.resourceGroup === '*') return own;
    return this.store.getHead({ tenant: scope.tenant, resourceGroup: '*' }, name);
  }

  /** The shadowing rule: refuses an rg-admin's write of a name the tenant holds tenant-wide. */
  async guardShadowing(ctx: CallContext, scope: ScopeKey, name: string): Promise<void> {
    if (ctx.principal.role !== 'rg-admin' || scope.resourceGroup === '*') return;
    if (await this.store.getHead({ tenant: scope.tenant, resourceGroup: '*' }, name))
      throw new PermissionDeniedError(
        `secret "${name}" would shadow the tenant-wide secret of the same name in ${describeScope(scope)}; only a tenant-admin may do that`,
      );
  }

  /** Deployments that mount the secret `name` of `scope` (directly, or through the tenant-wide fallback). */
  async deploymentsMounting(scope: ScopeKey, name: string): Promise<DeploymentRecord[]> {
    const listing = await this.store.deploymentsListing(scope.tenant, name);
    const result: DeploymentRecord[] = [];
    for (const d of listing) {
      if (d.resourceGroup === scope.resourceGroup) result.push(d);
      else if (scope.resourceGroup === '*' && !(await this.store.getHead({ tenant: d.tenant, resourceGroup: d.resourceGroup }, name))) result.push(d);
    }
    return result;
  }

  /** A new version must still fit beside the other secrets of every deployment that mounts it. */
  async checkDeploymentsStillFit(scope: ScopeKey, record: { name: string; mount: MountSpec; keys: string[] }): Promise<void> {
    for (const deployment of await this.deploymentsMounting(scope, record.name)) {
      const others = [];
      for (const other of deployment.secrets) {
        if (other === record.name) continue;
        const head = await this.resolveHead({ tenant: deployment.tenant, resourceGroup: deployment.resourceGroup }, other);
        if (head) others.push({ name: other, mount: head.mount, keys: head.keys });
      }
      const collisions = mountCollisions([...others, record]);
      if (collisions.length)
        throw new FailedPreconditionError(`deployment "${deployment.name}" mounts this secret and would then clash: ${collisions.join('; ')}`, 'MOUNT_COLLISION');
    }
  }

  /** Refuses to delete a secret a deployment still mounts (unless forced: the caller decides). */
  async checkNotMounted(scope: ScopeKey, name: string): Promise<void> {
    const users = await this.deploymentsMounting(scope, name);
    if (users.length)
      throw new FailedPreconditionError(
        `secret "${name}" is mounted by deployment${users.length > 1 ? 's' : ''} ${users.map((d) => `"${d.name}"${d.resourceGroup !== scope.resourceGroup ? ` (resource group "${d.resourceGroup}")` : ''}`).join(', ')}; detach it or delete with force`,
        'SECRET_IN_USE',
      );
  }
}

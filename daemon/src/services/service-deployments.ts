/**
 * Deployments: a named set of secrets in one scope (a resource group or the main-tenant scope),
 * which the agent of that deployment mounts. Each name resolves like a read: the deployment's own
 * scope first, then tenant-wide. Attaching is refused when a secret is missing (NOT_FOUND naming
 * them all) or when mounts clash (FAILED_PRECONDITION listing every collision).
 */
import { randomUUID } from 'node:crypto';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../../../shared/src/errors.js';
import { mountCollisions } from '../../../shared/src/layout.js';
import { checkDescription, checkLabels, checkResourceGroup, checkSecretName, checkTenant } from '../../../shared/src/validate.js';
import { auditDraft, auditFailures } from '../security/audit.js';
import { authorizeDeployment } from '../security/auth.js';
import { beforeDeadline, type CallContext } from './context.js';
import { deploymentMessage, type DeploymentInputMessage, type ScopeMessage } from './messages.js';
import { describeScope, scopeOf } from './scope.js';
import type { SecretsService } from './service-secrets.js';
import type { DeploymentRecord, Quotas, ScopeKey, Store } from '../store/store.js';

const MAX_SECRETS = 100;

export class DeploymentsService {
  constructor(
    private readonly store: Store,
    private readonly secrets: SecretsService,
    private readonly quotas: Quotas,
    /** Called after every committed change (its notice waits in the outbox). */
    private readonly onCommitted: () => void = () => {},
  ) {}

  private scope(message: ScopeMessage | undefined): ScopeKey {
    const scope = scopeOf(message);
    checkTenant(scope.tenant);
    checkResourceGroup(scope.resourceGroup);
    if (scope.resourceGroup === '*') throw new InvalidArgumentError('scope.resource_group', 'a deployment lives in a resource group or the main-tenant scope, not "*"');
    return scope;
  }

  /** Where each listed secret resolves; missing ones are refused together. */
  private async resolve(scope: ScopeKey, names: string[], strict: boolean): Promise<Record<string, string>> {
    const { resolved, missing, collisions } = await this.inspect(scope, names);
    if (strict && missing.length)
      throw new NotFoundError(`secret${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} not found in ${describeScope(scope)} or tenant-wide`, 'SECRET_NOT_FOUND');
    if (strict && collisions.length) throw new FailedPreconditionError(`these secrets clash when mounted together: ${collisions.join('; ')}`, 'MOUNT_COLLISION');
    return resolved;
  }

  /** Where each secret resolves ("" when missing), the missing ones, and every mount collision. */
  private async inspect(scope: ScopeKey, names: string[]): Promise<{ resolved: Record<string, string>; missing: string[]; collisions: string[] }> {
    const resolved: Record<string, string> = {};
    const missing: string[] = [];
    const mounted = [];
    for (const name of names) {
      const head = await this.secrets.resolveHead(scope, name);
      if (!head) {
        missing.push(name);
        resolved[name] = '';
        continue;
      }
      resolved[name] = head.resourceGroup;
      mounted.push({ name, mount: head.mount, keys: head.keys });
    }
    return { resolved, missing, collisions: mountCollisions(mounted) };
  }

  /**
   * What create or update would say about a list of secrets, without writing: the secrets not
   * found and one line per mount collision (the same check that refuses the write). For the
   * console, which shows clashes before the user saves.
   */
  async check(request: { scope?: ScopeMessage; secrets?: string[] }, ctx: CallContext) {
    const scope = this.scope(request.scope);
    authorizeDeployment(ctx.principal, 'read', scope);
    const { secrets } = this.checkInput({ name: 'check', secrets: request.secrets });
    const { resolved, missing, collisions } = await this.inspect(scope, secrets);
    return { ok: missing.length === 0 && collisions.length === 0, resolved, missing, collisions };
  }

  private checkInput(input: DeploymentInputMessage | undefined): { name: string; secrets: string[]; description: string; labels: Record<string, string> } {
    const name = input?.name ?? '';
    checkSecretName(name, 'deployment.name');
    const secrets = input?.secrets ?? [];
    if (secrets.length > MAX_SECRETS) throw new InvalidArgumentError('deployment.secrets', `at most ${MAX_SECRETS} secrets`);
    secrets.forEach((s, i) => checkSecretName(s, `deployment.secrets[${i}]`));
    const duplicate = secrets.find((s, i) => secrets.indexOf(s) !== i);
    if (duplicate) throw new InvalidArgumentError('deployment.secrets', `"${duplicate}" is listed twice`);
    const description = input?.description ?? '';
    checkDescription(description, 'deployment.description');
    const labels = { ...(input?.labels ?? {}) };
    checkLabels(labels, 'deployment.labels');
    return { name, secrets, description, labels };
  }

  private async write(operation: 'create' | 'update', request: { scope?: ScopeMessage; deployment?: DeploymentInputMessage; expected_version?: number }, ctx: CallContext) {
    const action = `deployment.${operation}`;
    return auditFailures(this.store, ctx, action, scopeOf(request.scope), request.deployment?.name ?? '', async () => {
      const scope = this.scope(request.scope);
      authorizeDeployment(ctx.principal, 'write', scope);
      const input = this.checkInput(request.deployment);
      const resolved = await this.resolve(scope, input.secrets, true);
      const now = new Date().toISOString();
      const existing = operation === 'update' ? await this.store.getDeployment(scope, input.name) : undefined;
      if (operation === 'update' && !existing) throw new NotFoundError(`deployment "${input.name}" not found in ${describeScope(scope)}`, 'DEPLOYMENT_NOT_FOUND');
      const record: DeploymentRecord = {
        tenant: scope.tenant,
        resourceGroup: scope.resourceGroup,
        ...input,
        uid: existing?.uid ?? randomUUID(),
        version: (existing?.version ?? 0) + 1,
        createTime: existing?.createTime ?? now,
        updateTime: now,
      };
      beforeDeadline(ctx, `the ${operation} of deployment "${input.name}"`);
      await this.store.writeDeployment(
        { operation, record, expectVersion: request.expected_version || existing?.version, quotas: this.quotas },
        [auditDraft(ctx, action, scope, input.name, record.version, 'ok')],
        ctx.deadline,
      );
      this.onCommitted();
      return deploymentMessage(record, resolved);
    });
  }

  create(request: { scope?: ScopeMessage; deployment?: DeploymentInputMessage }, ctx: CallContext) {
    return this.write('create', request, ctx);
  }

  update(request: { scope?: ScopeMessage; deployment?: DeploymentInputMessage; expected_version?: number }, ctx: CallContext) {
    return this.write('update', request, ctx);
  }

  /** Refuses a caller who may not write deployments in the scope, before anything is read (a REST PATCH reads first). */
  authorizeWrite(scope: ScopeMessage | undefined, ctx: CallContext): void {
    authorizeDeployment(ctx.principal, 'write', this.scope(scope));
  }

  async get(request: { scope?: ScopeMessage; name?: string }, ctx: CallContext) {
    const scope = this.scope(request.scope);
    const name = request.name ?? '';
    checkSecretName(name, 'name');
    authorizeDeployment(ctx.principal, 'read', scope, name);
    const record = await this.store.getDeployment(scope, name);
    if (!record) throw new NotFoundError(`deployment "${name}" not found in ${describeScope(scope)}`, 'DEPLOYMENT_NOT_FOUND');
    return deploymentMessage(record, await this.resolve(scope, record.secrets, false));
  }

  async list(request: { scope?: ScopeMessage }, ctx: CallContext) {
    const scope = this.scope(request.scope);
    if (ctx.principal.role === 'agent') throw new PermissionDeniedError('an agent token reads only its own deployment (GetDeployment)');
    authorizeDeployment(ctx.principal, 'read', scope);
    const records = await this.store.listDeployments(scope);
    const deployments = [];
    for (const record of records) deployments.push(deploymentMessage(record, await this.resolve(scope, record.secrets, false)));
    return { deployments };
  }

  async delete(request: { scope?: ScopeMessage; name?: string }, ctx: CallContext) {
    const name = request.name ?? '';
    return auditFailures(this.store, ctx, 'deployment.delete', scopeOf(request.scope), name, async () => {
      const scope = this.scope(request.scope);
      checkSecretName(name, 'name');
      authorizeDeployment(ctx.principal, 'write', scope);
      const record = await this.store.getDeployment(scope, name);
      if (!record) throw new NotFoundError(`deployment "${name}" not found in ${describeScope(scope)}`, 'DEPLOYMENT_NOT_FOUND');
      beforeDeadline(ctx, `the delete of deployment "${name}"`);
      await this.store.writeDeployment({ operation: 'delete', record }, [auditDraft(ctx, 'deployment.delete', scope, name, record.version, 'ok')], ctx.deadline);
      this.onCommitted();
      return { name };
    });
  }
}

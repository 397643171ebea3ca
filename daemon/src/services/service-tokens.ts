/**
 * Tokens: create (shown once), list (never the token), revoke.
 * Who may do what:
 * - a tenant-admin of the operator tenant ("default"): any token in any tenant;
 * - a tenant-admin: any token in its tenant;
 * - an rg-admin: rg-admin, reader, viewer and agent tokens within its own resource groups; it
 *   lists and revokes the tokens it created;
 * - any token may revoke itself.
 * A token the caller may not see answers NOT_FOUND, so ids of other tenants are not confirmed.
 */
import { checkDescription, checkResourceGroup, checkSecretName, checkTenant } from '../../../shared/src/validate.js';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../../../shared/src/errors.js';
import { auditDraft, auditFailures } from '../security/audit.js';
import { isOperator, roles, type Principal, type Role, type TokenAuthority } from '../security/auth.js';
import { beforeDeadline, type CallContext } from './context.js';
import { tokenInfo } from './messages.js';
import type { Store, TokenRecord } from '../store/store.js';

const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;

interface CreateTokenRequest {
  role?: string;
  tenant?: string;
  resource_groups?: string[];
  deployment?: string;
  deployment_resource_group?: string;
  description?: string;
  ttl_seconds?: number;
}

export class TokensService {
  constructor(
    private readonly store: Store,
    private readonly authority: TokenAuthority,
  ) {}

  private mayManage(principal: Principal, token: TokenRecord): boolean {
    if (isOperator(principal) || token.id === principal.tokenId) return true;
    if (principal.role === 'tenant-admin') return token.tenant === principal.tenant;
    if (principal.role === 'rg-admin') return token.createdBy === principal.tokenId;
    return false;
  }

  async create(request: CreateTokenRequest, ctx: CallContext) {
    const { principal } = ctx;
    const tenant = request.tenant || principal.tenant;
    return auditFailures(this.store, ctx, 'token.create', { tenant, resourceGroup: '' }, '', async () => {
      checkTenant(tenant, 'tenant');
      const role = request.role ?? '';
      if (!(roles as readonly string[]).includes(role)) throw new InvalidArgumentError('role', `"${role}" must be one of ${roles.join(', ')}`);
      const groups = [...new Set(request.resource_groups ?? [])];
      groups.forEach((g, i) => checkResourceGroup(g, `resource_groups[${i}]`));
      const deployment = request.deployment ?? '';
      const deploymentGroup = request.deployment_resource_group ?? '';
      const description = request.description ?? '';
      checkDescription(description);
      const ttl = request.ttl_seconds ?? 0;
      if (!Number.isInteger(ttl) || ttl < 0 || ttl > MAX_TTL_SECONDS) throw new InvalidArgumentError('ttl_seconds', `must be 0 (no expiry) to ${MAX_TTL_SECONDS}`);
      this.checkShape(role as Role, groups, deployment, deploymentGroup);
      this.checkMayCreate(principal, tenant, role as Role, groups, deploymentGroup);
      if (role === 'agent' && !(await this.store.getDeployment({ tenant, resourceGroup: deploymentGroup }, deployment)))
        throw new NotFoundError(`deployment "${deployment}" not found in tenant "${tenant}", resource group "${deploymentGroup}"`, 'DEPLOYMENT_NOT_FOUND');
      const { record, token } = this.authority.mint({
        role,
        tenant,
        resourceGroups: groups,
        deployment,
        deploymentResourceGroup: deploymentGroup,
        description,
        expireTime: ttl ? new Date(Date.now() + ttl * 1000).toISOString() : '',
        createdBy: principal.tokenId,
      });
      beforeDeadline(ctx, 'the token create');
      await this.store.insertToken(record, [auditDraft(ctx, 'token.create', { tenant, resourceGroup: deploymentGroup }, record.id, 0, 'ok')], ctx.deadline);
      return { token, info: tokenInfo(record) };
    });
  }

  private checkShape(role: Role, groups: string[], deployment: string, deploymentGroup: string): void {
    if (role === 'agent') {
      checkSecretName(deployment, 'deployment');
      checkResourceGroup(deploymentGroup, 'deployment_resource_group');
      if (deploymentGroup === '*') throw new InvalidArgumentError('deployment_resource_group', 'deployments are not tenant-wide');
      if (groups.length) throw new InvalidArgumentError('resource_groups', 'an agent token is bound to its deployment, not to resource groups');
      return;
    }
    if (deployment || deploymentGroup) throw new InvalidArgumentError('deployment', 'only agent tokens name a deployment');
    if (role === 'tenant-admin' && groups.length) throw new InvalidArgumentError('resource_groups', 'a tenant-admin covers the whole tenant; list no groups');
    if (role === 'rg-admin') {
      if (groups.length === 0) throw new InvalidArgumentError('resource_groups', 'an rg-admin needs at least one resource group');
      if (groups.some((g) => g === '' || g === '*')) throw new InvalidArgumentError('resource_groups', 'an rg-admin administers named resource groups, not "" or "*"');
    }
  }

  private checkMayCreate(principal: Principal, tenant: string, role: Role, groups: string[], deploymentGroup: string): void {
    if (isOperator(principal)) return;
    if (tenant !== principal.tenant) throw new PermissionDeniedError(`token ${principal.tokenId} is for tenant "${principal.tenant}", not "${tenant}"`);
    if (principal.role === 'tenant-admin') return;
    if (principal.role === 'rg-admin') {
      if (role === 'tenant-admin') throw new PermissionDeniedError('an rg-admin cannot create tenant-admin tokens');
      const wanted = role === 'agent' ? [deploymentGroup] : groups;
      if (wanted.length === 0) throw new PermissionDeniedError('an rg-admin must name resource groups it administers (an empty list means the whole tenant)');
      const outside = wanted.filter((g) => !principal.resourceGroups.includes(g));
      if (outside.length) throw new PermissionDeniedError(`token ${principal.tokenId} does not administer ${outside.map((g) => `"${g}"`).join(', ')}`);
      return;
    }
    throw new PermissionDeniedError(`role ${principal.role} cannot create tokens`);
  }

  async list(request: { tenant?: string; include_revoked?: boolean }, ctx: CallContext) {
    const { principal } = ctx;
    const tenant = request.tenant || principal.tenant;
    checkTenant(tenant, 'tenant');
    if (!isOperator(principal) && tenant !== principal.tenant) throw new PermissionDeniedError(`token ${principal.tokenId} is for tenant "${principal.tenant}", not "${tenant}"`);
    if (!['tenant-admin', 'rg-admin'].includes(principal.role)) throw new PermissionDeniedError(`role ${principal.role} cannot list tokens`);
    const tokens = (await this.store.listTokens(tenant)).filter((t) => (request.include_revoked || !t.revokeTime) && this.mayManage(principal, t));
    return { tokens: tokens.map(tokenInfo) };
  }

  async revoke(request: { id?: string }, ctx: CallContext) {
    const id = request.id ?? '';
    const scope = { tenant: ctx.principal.tenant, resourceGroup: '' };
    return auditFailures(this.store, ctx, 'token.revoke', scope, id, async () => {
      if (!/^[0-9a-f]{16}$/.test(id)) throw new InvalidArgumentError('id', 'must be a token id: 16 hex characters (the part after lbx_)');
      const existing = await this.store.getToken(id);
      if (!existing || !this.mayManage(ctx.principal, existing)) throw new NotFoundError(`token ${id} not found`, 'TOKEN_NOT_FOUND');
      beforeDeadline(ctx, `the revoke of token ${id}`);
      const revoked = await this.store.revokeToken(id, new Date().toISOString(), [auditDraft(ctx, 'token.revoke', { tenant: existing.tenant, resourceGroup: '' }, id, 0, 'ok')], ctx.deadline);
      this.authority.forget(id);
      return tokenInfo(revoked!);
    });
  }
}

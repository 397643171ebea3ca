/**
 * Tokens: `lbx_<id>_<secret>`, where id is 16 hex characters (the lookup key, shown in lists and
 * logs) and secret is 32 random bytes, base64url. Only a keyed BLAKE2b hash of id and secret is
 * stored; it is compared in constant time. The bootstrap admin token is written once, 0600, to
 * <data dir>/admin.token.
 *
 * Token records are cached by id for at most `cacheMs` (1 s): every call still compares the
 * presented secret's hash with the record's, but skips the database read. A revocation made through
 * this daemon drops the entry at once (`forget`); one made through another replica takes effect
 * within `cacheMs`. The hash of a token that verified once is remembered (an agent presents the
 * same token with every message of its session), so later calls skip hashing it again; revocation
 * and expiry are still checked on the record every time. Tokens that never verified are always
 * hashed, so the memo neither grows with garbage nor tells by timing which ids exist.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { constantTimeEqual, keyedHash, randomBytes } from '../../../shared/src/crypto.js';
import { PermissionDeniedError, UnauthenticatedError } from '../../../shared/src/errors.js';
import { createFileExclusively, writeFileDurably } from '../files.js';
import type { ScopeKey, Store, TokenRecord } from '../store/store.js';

export const roles = ['tenant-admin', 'rg-admin', 'reader', 'viewer', 'agent'] as const;
export type Role = (typeof roles)[number];

export interface Principal {
  tokenId: string;
  role: Role;
  tenant: string;
  resourceGroups: string[];
  deployment: string;
  deploymentResourceGroup: string;
}

const tokenPattern = /^lbx_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export const OPERATOR_TENANT = 'default';

const CACHE_LIMIT = 10_000;

export class TokenAuthority {
  private readonly cache = new Map<string, { record: TokenRecord; fetchedAt: number }>();
  /** Token → its keyed hash, for tokens that verified. */
  private readonly verified = new Map<string, string>();

  constructor(
    private readonly store: Store,
    private readonly hashKey: Uint8Array,
    private readonly cacheMs = 1000,
  ) {}

  /** Drops a cached token record (after a revocation). */
  forget(id: string): void {
    this.cache.delete(id);
  }

  private async lookup(id: string): Promise<TokenRecord | undefined> {
    const now = Date.now();
    const cached = this.cache.get(id);
    if (cached && now - cached.fetchedAt < this.cacheMs) return cached.record;
    const record = await this.store.getToken(id);
    if (record) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(id, { record, fetchedAt: now });
    } else {
      this.cache.delete(id);
    }
    return record;
  }

  private hash(id: string, secret: string): string {
    return keyedHash(`lockbox/v1/token\0${id}\0${secret}`, this.hashKey);
  }

  /** Makes a new token; returns the record (to store) and the token text (to show once). */
  mint(fields: Omit<TokenRecord, 'id' | 'hash' | 'createTime' | 'revokeTime'>): { record: TokenRecord; token: string } {
    const id = Buffer.from(randomBytes(8)).toString('hex');
    const secret = Buffer.from(randomBytes(32)).toString('base64url');
    const record: TokenRecord = { ...fields, id, hash: this.hash(id, secret), createTime: new Date().toISOString(), revokeTime: '' };
    return { record, token: `lbx_${id}_${secret}` };
  }

  /**
   * Writes the bootstrap admin token on first start. Order matters for a crash: (1) the file is
   * written, (2) the hash is stored. A crash between leaves a file whose token is unknown and no
   * token in the database, which the next start detects (no tokens) and repairs by writing anew.
   */
  async bootstrap(dataDir: string): Promise<{ created: boolean; path: string }> {
    const path = join(dataDir, 'admin.token');
    if ((await this.store.countTokens()) > 0) return { created: false, path };
    const { record, token } = this.mint({
      role: 'tenant-admin',
      tenant: OPERATOR_TENANT,
      resourceGroups: [],
      deployment: '',
      deploymentResourceGroup: '',
      description: 'bootstrap admin token',
      expireTime: '',
      createdBy: '',
    });
    if (existsSync(path)) writeFileDurably(path, token + '\n', 0o600); // (1), replacing a stale file
    else createFileExclusively(path, token + '\n', 0o600); // (1)
    await this.store.insertToken(record); // (2)
    return { created: true, path };
  }

  async authenticate(token: string | undefined): Promise<Principal> {
    if (!token) throw new UnauthenticatedError('no token: send "authorization: Bearer <token>" or "x-api-key: <token>"');
    const match = tokenPattern.exec(token);
    if (!match) throw new UnauthenticatedError('malformed token: expected lbx_<id>_<secret>');
    const [, id, secret] = match;
    const record = await this.lookup(id);
    // Hash even when the id is unknown, so timing does not tell which ids exist.
    const remembered = this.verified.get(token);
    const presented = remembered ?? this.hash(id, secret);
    // A remembered hash was verified once: compared as a string (the lookup that found it already
    // told which token it is); a token not seen yet is compared in constant time.
    const matches = record && (remembered !== undefined ? remembered === record.hash : constantTimeEqual(presented, record.hash));
    if (!record || !matches) throw new UnauthenticatedError('invalid token');
    if (!this.verified.has(token)) {
      if (this.verified.size >= CACHE_LIMIT) this.verified.clear();
      this.verified.set(token, presented);
    }
    if (record.revokeTime) throw new UnauthenticatedError(`token ${id} was revoked`);
    if (record.expireTime && Date.parse(record.expireTime) <= Date.now()) throw new UnauthenticatedError(`token ${id} expired at ${record.expireTime}`);
    return {
      tokenId: id,
      role: record.role as Role,
      tenant: record.tenant,
      resourceGroups: record.resourceGroups,
      deployment: record.deployment,
      deploymentResourceGroup: record.deploymentResourceGroup,
    };
  }
}

export type SecretAction = 'read-metadata' | 'read-values' | 'write';

function sameTenant(principal: Principal, tenant: string): void {
  if (principal.tenant !== tenant)
    throw new PermissionDeniedError(`token ${principal.tokenId} is for tenant "${principal.tenant}", not "${tenant}"`);
}

function groupName(group: string): string {
  return group === '' ? 'the main-tenant scope' : group === '*' ? 'the tenant-wide scope' : `resource group "${group}"`;
}

/** reader and viewer tokens see their listed groups (all of the tenant when none are listed) and tenant-wide secrets. */
function readsGroup(principal: Principal, group: string): boolean {
  return principal.resourceGroups.length === 0 || group === '*' || principal.resourceGroups.includes(group);
}

/**
 * Whether `principal` may do `action` on secrets in `scope`. Decided from the token and the
 * request alone, before anything is looked up, so a denial never tells whether a secret exists.
 * Agent tokens are decided by the service (they need their deployment); here they are refused.
 */
export function authorizeSecret(principal: Principal, action: SecretAction, scope: ScopeKey): void {
  sameTenant(principal, scope.tenant);
  const { role } = principal;
  if (role === 'tenant-admin') return;
  if (role === 'rg-admin') {
    if (principal.resourceGroups.includes(scope.resourceGroup)) return;
    if (scope.resourceGroup === '*') {
      if (action !== 'write') return;
      throw new PermissionDeniedError('an rg-admin cannot create, change or delete tenant-wide secrets; a tenant-admin can');
    }
    throw new PermissionDeniedError(`token ${principal.tokenId} administers ${principal.resourceGroups.map((g) => `"${g}"`).join(', ')}, not ${groupName(scope.resourceGroup)}`);
  }
  if (role === 'reader' || role === 'viewer') {
    if (action === 'write') throw new PermissionDeniedError(`role ${role} is read-only`);
    if (role === 'viewer' && action === 'read-values') throw new PermissionDeniedError('role viewer sees metadata only, never values');
    if (readsGroup(principal, scope.resourceGroup)) return;
    throw new PermissionDeniedError(`token ${principal.tokenId} may read ${principal.resourceGroups.map((g) => `"${g}"`).join(', ')}, not ${groupName(scope.resourceGroup)}`);
  }
  throw new PermissionDeniedError('an agent token reads only its deployment\'s secrets, one at a time (GetSecret)');
}

/** Deployments: admins of the scope write; readers and viewers of the scope read; an agent reads its own. */
export function authorizeDeployment(principal: Principal, action: 'read' | 'write', scope: ScopeKey, name?: string): void {
  sameTenant(principal, scope.tenant);
  const { role } = principal;
  if (role === 'tenant-admin') return;
  if (role === 'rg-admin' && principal.resourceGroups.includes(scope.resourceGroup)) return;
  if ((role === 'reader' || role === 'viewer') && action === 'read' && scope.resourceGroup !== '*' && readsGroup(principal, scope.resourceGroup)) return;
  if (role === 'agent' && action === 'read' && scope.resourceGroup === principal.deploymentResourceGroup && name === principal.deployment) return;
  throw new PermissionDeniedError(`role ${role} may not ${action} deployments in ${groupName(scope.resourceGroup)}`);
}

export function isOperator(principal: Principal): boolean {
  return principal.role === 'tenant-admin' && principal.tenant === OPERATOR_TENANT;
}

export function authorizeOperator(principal: Principal, what = 'manage master keys'): void {
  if (!isOperator(principal)) throw new PermissionDeniedError(`only a tenant-admin of tenant "${OPERATOR_TENANT}" may ${what}`);
}

/**
 * What a token may see, said up front for a user interface (the console's scope picker and which
 * pages it offers). Derived from the same rules auth.ts enforces on every call; the calls stay
 * the authority; this only spares a user choices that would be refused.
 */
import { isOperator, type Principal } from './auth.js';

export interface VisibleScope {
  /** "" the main-tenant scope, "*" tenant-wide, else a resource group. */
  resource_group: string;
  label: string;
  /** Whether the token may create, change and delete secrets there. */
  write: boolean;
}

const label = (group: string) => (group === '' ? 'main tenant scope' : group === '*' ? 'tenant-wide (*)' : `resource group ${group}`);

export function visibleScopes(principal: Principal): { scopes: VisibleScope[]; any_resource_group: boolean } {
  const scope = (group: string, write: boolean): VisibleScope => ({ resource_group: group, label: label(group), write });
  switch (principal.role) {
    case 'tenant-admin':
      return { scopes: [scope('', true), scope('*', true)], any_resource_group: true };
    case 'rg-admin': // its groups, and tenant-wide secrets to read (auth.ts: authorizeSecret)
      return { scopes: [...principal.resourceGroups.map((g) => scope(g, true)), scope('*', false)], any_resource_group: false };
    case 'reader':
    case 'viewer': // the listed groups, or the whole tenant when none are listed
      return principal.resourceGroups.length
        ? { scopes: [...principal.resourceGroups.map((g) => scope(g, false)), scope('*', false)], any_resource_group: false }
        : { scopes: [scope('', false), scope('*', false)], any_resource_group: true };
    default: // an agent reads its deployment's secrets one at a time; nothing to browse
      return { scopes: [], any_resource_group: false };
  }
}

/** Which parts of the API the token may use at all (each call still checks). */
export function tokenAbilities(principal: Principal) {
  const admin = principal.role === 'tenant-admin' || principal.role === 'rg-admin';
  return {
    write: admin,
    reveal: admin || principal.role === 'reader',
    tokens: admin,
    audit: principal.role === 'tenant-admin',
    verify_audit: isOperator(principal),
  };
}

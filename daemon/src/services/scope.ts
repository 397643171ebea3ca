import type { ScopeMessage } from './messages.js';
import type { ScopeKey } from '../store/store.js';

/** A request's scope, unvalidated: an empty tenant means "default", an absent group "". */
export function scopeOf(message: ScopeMessage | undefined): ScopeKey {
  return { tenant: message?.tenant || 'default', resourceGroup: message?.resource_group ?? '' };
}

/** How a scope reads in messages: `tenant "acme", resource group "team-a"`. */
export function describeScope(scope: ScopeKey): string {
  const group =
    scope.resourceGroup === '' ? 'the main-tenant scope' : scope.resourceGroup === '*' ? 'the tenant-wide scope' : `resource group "${scope.resourceGroup}"`;
  return `tenant "${scope.tenant}", ${group}`;
}

import type { ScopeKey } from './store.js';

/** How a scope reads in messages: `tenant "acme", resource group "team-a"`. */
export function describeScope(scope: ScopeKey): string {
  const group =
    scope.resourceGroup === '' ? 'the main-tenant scope' : scope.resourceGroup === '*' ? 'the tenant-wide scope' : `resource group "${scope.resourceGroup}"`;
  return `tenant "${scope.tenant}", ${group}`;
}

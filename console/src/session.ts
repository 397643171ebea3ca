/**
 * The signed-in session: the token lives in sessionStorage only (gone when the tab closes; never
 * in localStorage, a cookie or a URL), and the chosen scope beside it.
 */
const TOKEN = 'lockbox.token';
const SCOPE = 'lockbox.scope';

export function storedToken(): string {
  return sessionStorage.getItem(TOKEN) ?? '';
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN, token);
}

/** The resource group chosen in the scope picker: "" main tenant scope, "*" tenant-wide. */
export function storedScope(): string | undefined {
  return sessionStorage.getItem(SCOPE) ?? undefined;
}

export function storeScope(group: string): void {
  sessionStorage.setItem(SCOPE, group);
}

export function forgetSession(): void {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(SCOPE);
}

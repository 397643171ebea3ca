/**
 * The console's only way to the daemon: the public REST API on the same origin. The token goes
 * in the Authorization header and nowhere else; the scope in the AI-Resource-Group /
 * AI-Tenant-Scope headers. A 401 signs the user out (back to the sign-in page).
 */
import { storedToken } from './session';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

let onUnauthorized: () => void = () => {};

/** Called on any 401 answer: the session is over. */
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

export function scopeHeaders(group: string): Record<string, string> {
  if (group === '') return { 'AI-Tenant-Scope': 'true' };
  if (group === '*') return { 'AI-Tenant-Scope': 'true', 'AI-Resource-Group': '*' };
  return { 'AI-Resource-Group': group };
}

export interface CallOptions {
  scope?: string;
  query?: Record<string, string | number | boolean | string[] | undefined>;
  body?: unknown;
  /** Use this token instead of the stored one (sign-in checks a token before keeping it). */
  token?: string;
}

function queryString(query: CallOptions['query']): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === '') continue;
    for (const one of Array.isArray(value) ? value : [value]) params.append(key, String(one));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

export async function call<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${options.token ?? storedToken()}`, ...(options.scope !== undefined ? scopeHeaders(options.scope) : {}) };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path + queryString(options.query), {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  const text = await response.text();
  const json = text ? (JSON.parse(text) as unknown) : undefined;
  if (!response.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (response.status === 401 && options.token === undefined) onUnauthorized();
    throw new ApiError(response.status, error?.code ?? String(response.status), error?.message ?? `HTTP ${response.status}`);
  }
  return json as T;
}

/** A path segment: names are checked by the daemon; here they are only escaped. */
export const seg = (value: string | number) => encodeURIComponent(String(value));

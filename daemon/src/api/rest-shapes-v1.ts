/**
 * The FastAPI-style shapes of /v1 (and of the batch items, which use them too): values as UTF-8
 * text (binary ones back as `data_base64`), `provider_slug` for the template, `null` to remove a
 * key or label in an update, `value` for a one-key secret.
 */
import { InvalidArgumentError } from '../../../shared/src/errors.js';
import { templateKeys } from '../../../shared/src/validate.js';
import { ownValue, userRecord } from '../../../shared/src/user-keys.js';
import type { CallContext } from '../services/context.js';
import type { MountMessage, ScopeMessage, SecretMessage, UpdateSecretRequest } from '../services/messages.js';
import type { RestServices } from './rest-common.js';

export interface V1SecretFields {
  name: string;
  value?: string;
  data?: Record<string, string | null>;
  labels?: Record<string, string | null>;
  type?: string;
  provider_slug?: string;
  description?: string;
  mount?: MountMessage;
  replace?: boolean;
  expected_version?: number;
  force?: boolean;
}

export function textBytes(values: Record<string, string>): Record<string, Uint8Array> {
  return userRecord(Object.entries(values).map(([key, value]) => [key, Buffer.from(value, 'utf8')] as const));
}

/** The key a one-value create stores its value under: the provider's only key, else "value". */
export function oneValueKey(providerSlug: string | undefined): string {
  const keys = ownValue(templateKeys, providerSlug || 'custom') ?? [];
  return keys.length === 1 ? keys[0] : 'value';
}

export function v1Secret(secret: SecretMessage): Record<string, unknown> {
  const { name, scope, uid, type, template, data, ...rest } = secret;
  const shown: Record<string, unknown> = { id: name, name, scope, uid, type, provider_slug: template, ...rest };
  if (data) {
    const text = userRecord<string>();
    const binary = userRecord<string>();
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for (const [key, value] of Object.entries(data)) {
      try {
        text[key] = decoder.decode(value);
      } catch {
        binary[key] = Buffer.from(value).toString('base64');
      }
    }
    shown.data = text;
    if (Object.keys(binary).length) shown.data_base64 = binary;
  }
  return shown;
}

/** A map without null values (null means "remove", which only an update can do). */
function onlyStrings(values: Record<string, string | null> | undefined, field: string): Record<string, string> | undefined {
  if (!values) return undefined;
  for (const [key, value] of Object.entries(values))
    if (value === null) throw new InvalidArgumentError(`${field}[${JSON.stringify(key.slice(0, 64))}]`, 'null (remove) applies to updates only');
  return values as Record<string, string>;
}

/** A /v1 create (POST body or batch item) as the service's secret input. */
export function v1SecretInput(body: V1SecretFields, field: string) {
  if (body.value !== undefined && body.data !== undefined) throw new InvalidArgumentError(`${field}value`, 'give value or data, not both');
  const data = body.value !== undefined ? { [oneValueKey(body.provider_slug)]: body.value } : (onlyStrings(body.data, `${field}data`) ?? {});
  return {
    name: body.name,
    type: body.type,
    template: body.provider_slug,
    description: body.description,
    labels: onlyStrings(body.labels, `${field}labels`),
    mount: body.mount,
    data: textBytes(data),
  };
}

/** A /v1 update (PATCH body or batch item) as an UpdateSecretRequest. */
export async function v1UpdateRequest(services: RestServices, ctx: CallContext, scope: ScopeMessage, name: string, body: Omit<V1SecretFields, 'name'>, field: string): Promise<UpdateSecretRequest> {
  const set = userRecord<string>();
  const remove: string[] = [];
  for (const [key, value] of Object.entries(body.data ?? {})) {
    if (value === null) remove.push(key);
    else set[key] = value;
  }
  if (body.value !== undefined) {
    if (body.data !== undefined) throw new InvalidArgumentError(`${field}value`, 'give value or data, not both');
    const current = await services.secrets.get({ scope, name }, ctx);
    if (current.keys.length !== 1)
      throw new InvalidArgumentError(`${field}value`, `secret "${name}" has ${current.keys.length} keys; name the key in data`);
    set[current.keys[0]] = body.value;
  }
  const setLabels = userRecord<string>();
  const removeLabels: string[] = [];
  for (const [key, value] of Object.entries(body.labels ?? {})) {
    if (value === null) removeLabels.push(key);
    else setLabels[key] = value;
  }
  return {
    scope,
    name,
    set: textBytes(set),
    remove,
    replace: body.replace ?? false,
    expected_version: body.expected_version,
    description: body.description,
    set_labels: setLabels,
    remove_labels: removeLabels,
    mount: body.mount,
    template: body.provider_slug,
    type: body.type,
  };
}

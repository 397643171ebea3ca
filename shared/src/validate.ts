/**
 * Validation of everything a caller sends, shared by the daemon (on write) and the agent (before
 * it writes files). Each check throws InvalidArgumentError naming the field and the rule.
 */
import { InvalidArgumentError } from './errors.js';
import { limits } from './limits.js';
import { fileNameProblem, relativePathProblem } from './mount-path.js';
import { ownValue } from './user-keys.js';

export const secretTypes = ['opaque', 'container_registry'] as const;
export type SecretType = (typeof secretTypes)[number];

/** Provider slugs and the keys each one requires. `custom` requires nothing. */
export const templateKeys: Record<string, readonly string[]> = {
  openai: ['OPENAI_API_KEY'],
  aws: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
  huggingface: ['HF_TOKEN'],
  github: ['GITHUB_TOKEN'],
  custom: [],
};
export const templates = Object.keys(templateKeys);

export const registryKeys = { required: ['server', 'username', 'password'], optional: ['email'] } as const;

export const mountKinds = ['file', 'env'] as const;
export type MountKind = (typeof mountKinds)[number];
export const envFormats = ['dotenv', 'sh', 'json'] as const;
export type EnvFormat = (typeof envFormats)[number];

export interface MountSpec {
  kind: MountKind;
  path: string;
  subPaths: Record<string, string>;
  /** "" for file mounts. */
  format: EnvFormat | "";
}

const namePattern = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const scopeNamePattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const keyPattern = /^[A-Za-z0-9._-]+$/;
const envKeyPattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
const labelNamePattern = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const labelPrefixPattern = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const labelValuePattern = /^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$/;

function quoteForMessage(text: string): string {
  // Names are not secret, but may be hostile: cut them short and show control characters escaped.
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

export function checkSecretName(name: string, field = 'name'): void {
  if (!name) throw new InvalidArgumentError(field, 'is required');
  if (name.length > limits.maxNameLength)
    throw new InvalidArgumentError(field, `must be at most ${limits.maxNameLength} characters`);
  if (!namePattern.test(name) || name.includes('..'))
    throw new InvalidArgumentError(
      field,
      `${quoteForMessage(name)} must start and end with a letter or digit and contain only letters, digits, ".", "_" and "-" (no "..")`,
    );
}

export function checkTenant(tenant: string, field = 'scope.tenant'): void {
  if (!scopeNamePattern.test(tenant))
    throw new InvalidArgumentError(
      field,
      `${quoteForMessage(tenant)} must be 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit`,
    );
}

/** "" (main tenant), "*" (tenant-wide) or a named group. */
export function checkResourceGroup(group: string, field = 'scope.resource_group'): void {
  if (group === '' || group === '*') return;
  if (!scopeNamePattern.test(group))
    throw new InvalidArgumentError(
      field,
      `${quoteForMessage(group)} must be "" (main tenant), "*" (tenant-wide) or 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit`,
    );
}

export function checkKeyName(key: string, field: string): void {
  if (!key) throw new InvalidArgumentError(field, 'key must not be empty');
  if (key.length > limits.maxKeyLength)
    throw new InvalidArgumentError(field, `key must be at most ${limits.maxKeyLength} characters`);
  if (!keyPattern.test(key))
    throw new InvalidArgumentError(field, `key ${quoteForMessage(key)} may contain only letters, digits, ".", "_" and "-"`);
  const problem = fileNameProblem(key);
  if (problem) throw new InvalidArgumentError(field, `key ${quoteForMessage(key)} ${problem}`);
  // Other names of Object.prototype members (constructor, toString, …) are ordinary keys
  // (user-keys.ts); this one alone JSON bodies cannot carry safely, so no API takes it.
  if (key === '__proto__') throw new InvalidArgumentError(field, 'key "__proto__" is reserved');
}

export function checkData(data: Record<string, Uint8Array>, field: string): void {
  const keys = Object.keys(data);
  if (keys.length > limits.maxKeysPerSecret)
    throw new InvalidArgumentError(field, `at most ${limits.maxKeysPerSecret} keys (got ${keys.length})`);
  let total = 0;
  for (const key of keys) {
    checkKeyName(key, `${field}[${quoteForMessage(key)}]`);
    total += data[key].byteLength;
  }
  if (total > limits.maxSecretBytes)
    throw new InvalidArgumentError(field, `values must total at most ${limits.maxSecretBytes} bytes (got ${total})`);
}

export function checkLabels(labels: Record<string, string>, field = 'labels'): void {
  const entries = Object.entries(labels);
  if (entries.length > limits.maxLabels) throw new InvalidArgumentError(field, `at most ${limits.maxLabels} labels`);
  for (const [key, value] of entries) {
    const slash = key.indexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if ((prefix !== undefined && !labelPrefixPattern.test(prefix)) || !labelNamePattern.test(name))
      throw new InvalidArgumentError(
        `${field}[${quoteForMessage(key)}]`,
        'label key must be [prefix/]name: name 1-63 letters, digits, "-", "_", "." starting and ending alphanumeric; prefix a lowercase DNS name',
      );
    if (!labelValuePattern.test(value))
      throw new InvalidArgumentError(
        `${field}[${quoteForMessage(key)}]`,
        'label value must be 0-63 letters, digits, "-", "_", "." starting and ending alphanumeric',
      );
  }
}

export function checkDescription(description: string, field = 'description'): void {
  if (description.length > limits.maxDescriptionLength)
    throw new InvalidArgumentError(field, `must be at most ${limits.maxDescriptionLength} characters`);
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(description))
    throw new InvalidArgumentError(field, 'must not contain control characters');
}

export function checkType(type: string, field = 'type'): SecretType {
  if (!(secretTypes as readonly string[]).includes(type))
    throw new InvalidArgumentError(field, `${quoteForMessage(type)} must be one of ${secretTypes.join(', ')}`);
  return type as SecretType;
}

export function checkTemplate(template: string, field = 'template'): string {
  if (!templates.includes(template))
    throw new InvalidArgumentError(field, `${quoteForMessage(template)} must be one of ${templates.join(', ')}`);
  return template;
}

export function checkRelativePath(path: string, field: string): void {
  const problem = relativePathProblem(path);
  if (problem) throw new InvalidArgumentError(field, `${quoteForMessage(path)} ${problem}`);
}

/** Checks the mount against the data keys it has to place. */
export function checkMount(mount: MountSpec, keys: string[], field = 'mount'): void {
  if (!(mountKinds as readonly string[]).includes(mount.kind))
    throw new InvalidArgumentError(`${field}.kind`, `${quoteForMessage(mount.kind)} must be one of ${mountKinds.join(', ')}`);
  checkRelativePath(mount.path, `${field}.path`);
  if (mount.kind === 'env') {
    if (!(envFormats as readonly string[]).includes(mount.format))
      throw new InvalidArgumentError(`${field}.format`, `${quoteForMessage(mount.format)} must be one of ${envFormats.join(', ')}`);
    if (Object.keys(mount.subPaths).length > 0)
      throw new InvalidArgumentError(`${field}.sub_paths`, 'sub-paths apply to file mounts only');
    for (const key of keys)
      if (!envKeyPattern.test(key))
        throw new InvalidArgumentError(
          `data[${quoteForMessage(key)}]`,
          'an env mount needs keys that are environment variable names ([A-Za-z_][A-Za-z0-9_]*)',
        );
  } else if (mount.format !== '') {
    throw new InvalidArgumentError(`${field}.format`, 'a format applies to env mounts only');
  }
  for (const [key, sub] of Object.entries(mount.subPaths)) {
    if (!keys.includes(key))
      throw new InvalidArgumentError(`${field}.sub_paths[${quoteForMessage(key)}]`, 'names a key the secret does not have');
    checkRelativePath(sub, `${field}.sub_paths[${quoteForMessage(key)}]`);
    const joined = `${mount.path}/${sub}`;
    if (joined.length > limits.maxPathLength)
      throw new InvalidArgumentError(`${field}.sub_paths[${quoteForMessage(key)}]`, `path and sub-path must total at most ${limits.maxPathLength} characters`);
  }
}

/**
 * The keys a type or template demands, checked against the data: each present, and a template's
 * not empty (an unset `$HF_TOKEN` piped in is no token). Refused naming the key, never its value.
 */
export function checkRequiredKeys(type: SecretType, template: string, data: Record<string, Uint8Array>, field = 'data'): void {
  const keys = Object.keys(data);
  if (type === 'container_registry') {
    const missing = registryKeys.required.filter((k) => !keys.includes(k));
    const allowed: readonly string[] = [...registryKeys.required, ...registryKeys.optional];
    const extra = keys.filter((k) => !allowed.includes(k));
    if (missing.length)
      throw new InvalidArgumentError(field, `type container_registry needs keys ${missing.join(', ')}`, 'TEMPLATE_KEYS_MISSING');
    if (extra.length)
      throw new InvalidArgumentError(field, `type container_registry accepts only server, username, password, email (got ${extra.join(', ')})`);
  }
  const required = ownValue(templateKeys, template) ?? [];
  const missing = required.filter((k) => !keys.includes(k));
  if (missing.length)
    throw new InvalidArgumentError(field, `template ${template} needs keys ${missing.join(', ')}`, 'TEMPLATE_KEYS_MISSING');
  const empty = required.find((k) => data[k].length === 0);
  if (empty !== undefined)
    throw new InvalidArgumentError(`${field}[${quoteForMessage(empty)}]`, `is empty; template ${template} needs a value for it`, 'TEMPLATE_KEYS_MISSING');
}

/**
 * An RFC 3339 time as lockbox takes it (audit filters, exports and prunes, over gRPC, REST and
 * the CLI): a date (`2026-01-31`, midnight UTC), or a date and time with its zone
 * (`2026-01-31T12:00:00Z`, `2026-01-31T12:00:00.5+02:00`; T and Z in either case). Also taken,
 * beyond RFC 3339: a time without seconds (`2026-01-31T12:00Z`). Every field must exist: no
 * February 30th, hour 24 or minute 60 (Date.parse would roll them into the next day or hour). As
 * ms since the epoch; undefined when `text` is not one (a time without a zone is not: whose
 * midnight?).
 */
export function parseTime(text: string): number | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|([+-])(\d{2}):(\d{2})))?$/i.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour = '0', minute = '0', second = '0', fraction = '', , sign, zoneHour = '0', zoneMinute = '0'] = match;
  const [y, mo, d, h, mi, s, zh, zm] = [year, month, day, hour, minute, second, zoneHour, zoneMinute].map(Number);
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0-99 as 1900-1999 (Go's zero time is 0001-01-01).
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return undefined;
  if (h > 23 || mi > 59 || s > 59 || zh > 23 || zm > 59) return undefined; // a leap second (:60) has no ms of its own
  const offset = (sign === '-' ? -1 : 1) * (zh * 60 + zm) * 60_000;
  return date.getTime() + ((h * 60 + mi) * 60 + s) * 1000 + Math.floor(Number(`0${fraction || '.0'}`) * 1000) - offset;
}

/** A time field (parseTime) as ms since the epoch; refused by name when it is not one. */
export function checkTime(text: string, field: string): number {
  const ms = parseTime(text);
  if (ms === undefined) throw new InvalidArgumentError(field, `${quoteForMessage(text)} is not an RFC 3339 time: give a date (2026-01-31) or a date and time with its zone (2026-01-31T12:00:00Z)`);
  return ms;
}

/** "k=v" → [k, v], for label filters and CLI input. */
export function splitAssignment(text: string, field: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(field, `${quoteForMessage(text)} must look like key=value`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/**
 * The file of `lockbox apply -f`: JSON or YAML, what a scope should hold.
 *
 *   scope: { tenant, resource_group }      optional; flags override
 *   secrets:                               (or `items`, its older name)
 *     - name, type, template, description, labels, mount, data / data_base64
 *                                          declared: created, or updated to match
 *     - mode: create | update | delete     an explicit batch item, applied as written
 *   deployments:
 *     - name, secrets: [names], description, labels
 *
 * A bare list is a `secrets` list. A declared secret or deployment is the whole truth for what
 * it can say: a field left out means its default (no labels, no description, template custom,
 * the default mount). Values are text under `data` (`set` in an update item), or base64 under
 * `data_base64` (`set_base64`). Unknown fields are refused by name; a list that is absent is
 * neither applied nor pruned.
 */
import YAML from 'yaml';
import { hasKey, userRecord } from '../../shared/src/user-keys.js';
import { UsageError } from './inputs.js';

export interface FileScope {
  tenant?: string;
  resource_group?: string;
}

export interface MountFields {
  kind?: string;
  path?: string;
  sub_paths?: Record<string, string>;
  format?: string;
}

/** A secret as the file declares it should be. */
export interface DeclaredSecret {
  declared: true;
  index: number;
  name: string;
  type: string;
  template: string;
  description: string;
  labels: Record<string, string>;
  mount?: MountFields;
  data: Record<string, Buffer>;
}

/** An explicit batch item (`mode: create | update | delete`), as a BatchItem of the API. */
export interface BatchEntry {
  declared: false;
  index: number;
  name: string;
  mode: 'create' | 'update' | 'delete';
  item: object;
}

export interface DeclaredDeployment {
  index: number;
  name: string;
  secrets: string[];
  description: string;
  labels: Record<string, string>;
}

export interface ApplyFile {
  scope?: FileScope;
  /** Undefined when the file has no secrets list (then none is pruned either). */
  secrets?: Array<DeclaredSecret | BatchEntry>;
  deployments?: DeclaredDeployment[];
}

const itemFields: Record<string, string[]> = {
  declared: ['name', 'type', 'template', 'provider', 'description', 'labels', 'mount', 'data', 'data_base64'],
  create: ['mode', 'name', 'type', 'template', 'provider', 'description', 'labels', 'mount', 'data', 'data_base64'],
  update: ['mode', 'name', 'set', 'set_base64', 'remove', 'replace', 'expected_version', 'description', 'labels', 'remove_labels', 'mount', 'template', 'provider'],
  delete: ['mode', 'name', 'expected_version'],
};
const mountFields = ['kind', 'path', 'sub_paths', 'format'];
const deploymentFields = ['name', 'secrets', 'description', 'labels'];

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function checkFields(object: Record<string, unknown>, allowed: string[], where: string): void {
  const unknown = Object.keys(object).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new UsageError(`${where}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (allowed: ${allowed.join(', ')})`);
}

function values(item: Record<string, unknown>, textField: string, b64Field: string, where: string): Record<string, Buffer> {
  const out = userRecord<Buffer>();
  for (const [field, encoding] of [[textField, 'utf8'], [b64Field, 'base64']] as const) {
    const map = item[field];
    if (map === undefined) continue;
    if (!isMap(map)) throw new UsageError(`${where}.${field} must be a map of key: value`);
    for (const [key, value] of Object.entries(map)) {
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
        throw new UsageError(`${where}.${field}.${key} must be a string`);
      if (key in out) throw new UsageError(`${where}: key "${key}" is given twice`);
      if (encoding === 'base64' && !/^[A-Za-z0-9+/]*={0,2}$/.test(String(value))) throw new UsageError(`${where}.${field}.${key} is not base64`);
      out[key] = Buffer.from(String(value), encoding);
    }
  }
  return out;
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isMap(value) || Object.values(value).some((v) => typeof v !== 'string')) throw new UsageError(`${where} must be a map of text values`);
  return userRecord(Object.entries(value as Record<string, string>));
}

function textField(value: unknown, where: string): string | undefined {
  if (value !== undefined && typeof value !== 'string') throw new UsageError(`${where} must be text`);
  return value;
}

function mountOf(value: unknown, where: string): MountFields | undefined {
  if (value === undefined) return undefined;
  if (!isMap(value)) throw new UsageError(`${where}.mount must be a map`);
  checkFields(value, mountFields, `${where}.mount`);
  return value as MountFields;
}

function secretEntry(raw: unknown, index: number, where: string): DeclaredSecret | BatchEntry {
  if (!isMap(raw)) throw new UsageError(`${where} must be a map`);
  const mode = raw.mode === undefined ? 'declared' : String(raw.mode);
  if (!hasKey(itemFields, mode) || (raw.mode !== undefined && mode === 'declared')) throw new UsageError(`${where}.mode "${mode}" must be create, update or delete (or left out: create or update to match)`);
  checkFields(raw, itemFields[mode], where);
  if (typeof raw.name !== 'string' || !raw.name) throw new UsageError(`${where}.name is required`);
  const name = raw.name;
  const template = textField(raw.template ?? raw.provider, `${where}.template`);
  if (mode === 'declared')
    return {
      declared: true,
      index,
      name,
      type: textField(raw.type, `${where}.type`) || 'opaque',
      template: template || 'custom',
      description: textField(raw.description, `${where}.description`) ?? '',
      labels: stringMap(raw.labels, `${where}.labels`) ?? {},
      mount: mountOf(raw.mount, where),
      data: values(raw, 'data', 'data_base64', where),
    };
  const entry = { declared: false as const, index, name, mode: mode as BatchEntry['mode'] };
  if (mode === 'create')
    return {
      ...entry,
      item: { create: { name, type: raw.type, template, description: raw.description, labels: raw.labels, mount: mountOf(raw.mount, where), data: values(raw, 'data', 'data_base64', where) } },
    };
  if (mode === 'update')
    return {
      ...entry,
      item: {
        update: {
          name,
          set: values(raw, 'set', 'set_base64', where),
          remove: raw.remove,
          replace: raw.replace,
          expected_version: raw.expected_version,
          description: raw.description,
          set_labels: raw.labels,
          remove_labels: raw.remove_labels,
          mount: mountOf(raw.mount, where),
          template,
        },
      },
    };
  return { ...entry, item: { delete: { name, expected_version: raw.expected_version } } };
}

function deploymentEntry(raw: unknown, index: number, where: string): DeclaredDeployment {
  if (!isMap(raw)) throw new UsageError(`${where} must be a map with name and secrets`);
  checkFields(raw, deploymentFields, where);
  if (typeof raw.name !== 'string' || !raw.name) throw new UsageError(`${where}.name is required`);
  const secretsRaw = raw.secrets ?? [];
  if (!Array.isArray(secretsRaw)) throw new UsageError(`${where}.secrets must be a list`);
  const secrets = secretsRaw.map((s: unknown, j) => {
    const name = typeof s === 'string' ? s : isMap(s) ? s.name : undefined;
    if (typeof name !== 'string' || !name) throw new UsageError(`${where}.secrets[${j}] must be a name or a map with a name`);
    return name;
  });
  return { index, name: raw.name, secrets, description: textField(raw.description, `${where}.description`) ?? '', labels: stringMap(raw.labels, `${where}.labels`) ?? {} };
}

function uniqueNames(entries: Array<{ name: string }>, where: string): void {
  const seen = new Set<string>();
  for (const { name } of entries) {
    if (seen.has(name)) throw new UsageError(`${where}: "${name}" is listed more than once`);
    seen.add(name);
  }
}

export function parseApplyFile(text: string, source: string): ApplyFile {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (error) {
    throw new UsageError(`${source}: not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  const root = Array.isArray(doc) ? { secrets: doc } : doc;
  if (!isMap(root)) throw new UsageError(`${source}: expected a list of secrets, or a map with "secrets" and/or "deployments"`);
  checkFields(root, ['scope', 'secrets', 'items', 'deployments'], source);
  if (root.secrets !== undefined && root.items !== undefined) throw new UsageError(`${source}: give "secrets" or its older name "items", not both`);
  const listName = root.items !== undefined ? 'items' : 'secrets';
  const secretList = root[listName];
  if (secretList === undefined && root.deployments === undefined) throw new UsageError(`${source}: expected a list of secrets, or a map with "secrets" and/or "deployments"`);
  if (secretList !== undefined && !Array.isArray(secretList)) throw new UsageError(`${source}: ${listName} must be a list`);
  if (root.deployments !== undefined && !Array.isArray(root.deployments)) throw new UsageError(`${source}: deployments must be a list`);
  if (root.scope !== undefined) {
    if (!isMap(root.scope)) throw new UsageError(`${source}: scope must be a map`);
    checkFields(root.scope, ['tenant', 'resource_group'], `${source}: scope`);
  }
  const secrets = (secretList as unknown[] | undefined)?.map((raw, i) => secretEntry(raw, i, `${source}: ${listName}[${i}]`));
  const deployments = (root.deployments as unknown[] | undefined)?.map((raw, i) => deploymentEntry(raw, i, `${source}: deployments[${i}]`));
  if (secrets) uniqueNames(secrets.filter((s) => s.declared), `${source}: ${listName}`);
  if (deployments) uniqueNames(deployments, `${source}: deployments`);
  return { scope: root.scope as FileScope | undefined, secrets, deployments };
}

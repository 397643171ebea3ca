/**
 * CLI input parsing: `KEY=VALUE`, `KEY=@file` (the file's bytes) and `KEY=-` (standard input,
 * for one key at most), `k=v` labels and `KEY=SUB` sub-paths, and batch files for `apply`.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { hasKey, userRecord } from '../../shared/src/user-keys.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function splitPair(text: string, what: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`${what} "${text}" must look like KEY=VALUE`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

export function readValues(pairs: string[], readStdin: () => Buffer = () => readFileSync(0)): Record<string, Buffer> {
  const data = userRecord<Buffer>();
  let stdinUsed = false;
  for (const pair of pairs) {
    const [key, spec] = splitPair(pair, 'value');
    if (key in data) throw new UsageError(`key "${key}" is given twice`);
    if (spec === '-') {
      if (stdinUsed) throw new UsageError('only one key can read its value from standard input ("-")');
      stdinUsed = true;
      data[key] = readStdin();
    } else if (spec.startsWith('@')) {
      const path = spec.slice(1);
      try {
        data[key] = readFileSync(path);
      } catch (error) {
        throw new UsageError(`cannot read the value of "${key}" from ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    } else {
      data[key] = Buffer.from(spec, 'utf8');
    }
  }
  return data;
}

export function readMap(pairs: string[] | undefined, what: string): Record<string, string> {
  const out = userRecord<string>();
  for (const pair of pairs ?? []) {
    const [k, v] = splitPair(pair, what);
    out[k] = v;
  }
  return out;
}

const itemFields: Record<string, string[]> = {
  create: ['mode', 'name', 'type', 'template', 'provider', 'description', 'labels', 'mount', 'data', 'data_base64'],
  update: ['mode', 'name', 'set', 'set_base64', 'remove', 'replace', 'expected_version', 'description', 'labels', 'remove_labels', 'mount', 'template', 'provider'],
  delete: ['mode', 'name', 'expected_version'],
};
const mountFields = ['kind', 'path', 'sub_paths', 'format'];

function values(item: Record<string, unknown>, textField: string, b64Field: string, where: string): Record<string, Buffer> {
  const out = userRecord<Buffer>();
  for (const [field, encoding] of [[textField, 'utf8'], [b64Field, 'base64']] as const) {
    const map = item[field];
    if (map === undefined) continue;
    if (!map || typeof map !== 'object' || Array.isArray(map)) throw new UsageError(`${where}.${field} must be a map of key: value`);
    for (const [key, value] of Object.entries(map as Record<string, unknown>)) {
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
        throw new UsageError(`${where}.${field}.${key} must be a string`);
      if (key in out) throw new UsageError(`${where}: key "${key}" is given twice`);
      if (encoding === 'base64' && !/^[A-Za-z0-9+/]*={0,2}$/.test(String(value))) throw new UsageError(`${where}.${field}.${key} is not base64`);
      out[key] = Buffer.from(String(value), encoding);
    }
  }
  return out;
}

function checkFields(object: Record<string, unknown>, allowed: string[], where: string): void {
  const unknown = Object.keys(object).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new UsageError(`${where}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (allowed: ${allowed.join(', ')})`);
}

function mountOf(value: unknown, where: string): object | undefined {
  if (value === undefined) return undefined;
  if (!value || typeof value !== 'object') throw new UsageError(`${where}.mount must be a map`);
  checkFields(value as Record<string, unknown>, mountFields, `${where}.mount`);
  return value;
}

/**
 * A batch file: JSON or YAML, either a list of items or `{scope?: {...}, items: [...]}`. Each item
 * has `mode: create|update|delete` (default create). Values are text under `data` / `set`, or
 * base64 under `data_base64` / `set_base64`. Unknown fields are refused by name.
 */
export function parseBatchFile(text: string, source: string): { scope?: { tenant?: string; resource_group?: string }; items: object[] } {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (error) {
    throw new UsageError(`${source}: not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  const root = Array.isArray(doc) ? { items: doc } : (doc as Record<string, unknown> | null);
  if (!root || typeof root !== 'object' || !Array.isArray(root.items)) throw new UsageError(`${source}: expected a list of items, or a map with "items"`);
  checkFields(root, ['scope', 'items'], source);
  const items = (root.items as unknown[]).map((raw, i) => {
    const where = `${source}: items[${i}]`;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new UsageError(`${where} must be a map`);
    const item = raw as Record<string, unknown>;
    const mode = (item.mode ?? 'create') as string;
    if (!hasKey(itemFields, mode)) throw new UsageError(`${where}.mode "${mode}" must be create, update or delete`);
    checkFields(item, itemFields[mode], where);
    if (typeof item.name !== 'string') throw new UsageError(`${where}.name is required`);
    const template = (item.template ?? item.provider) as string | undefined;
    if (mode === 'create')
      return {
        create: {
          name: item.name,
          type: item.type,
          template,
          description: item.description,
          labels: item.labels,
          mount: mountOf(item.mount, where),
          data: values(item, 'data', 'data_base64', where),
        },
      };
    if (mode === 'update')
      return {
        update: {
          name: item.name,
          set: values(item, 'set', 'set_base64', where),
          remove: item.remove,
          replace: item.replace,
          expected_version: item.expected_version,
          description: item.description,
          set_labels: item.labels,
          remove_labels: item.remove_labels,
          mount: mountOf(item.mount, where),
          template,
        },
      };
    return { delete: { name: item.name, expected_version: item.expected_version } };
  });
  return { scope: root.scope as { tenant?: string; resource_group?: string } | undefined, items };
}

export interface DeploymentSpec {
  name: string;
  secrets: string[];
  description?: string;
  labels?: Record<string, string>;
  scope?: { tenant?: string; resource_group?: string };
}

/**
 * Deployment files in the shape users already write: one YAML/JSON document per deployment (or a
 * list), with `name` and `secrets` (names, or maps with a `name`). Fields lockbox does not use
 * (`bento`, `services`, `envs`, …) are ignored; the notes say which, so nothing is silently lost.
 */
export function parseDeploymentFile(text: string, source: string): { deployments: DeploymentSpec[]; notes: string[] } {
  let docs: unknown[];
  try {
    docs = YAML.parseAllDocuments(text).map((doc) => {
      if (doc.errors.length) throw doc.errors[0];
      return doc.toJS() as unknown;
    });
  } catch (error) {
    throw new UsageError(`${source}: not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  const items = docs.flatMap((doc) => (Array.isArray(doc) ? doc : doc === null || doc === undefined ? [] : [doc]));
  if (items.length === 0) throw new UsageError(`${source}: no deployment in the file`);
  const notes: string[] = [];
  const used = ['name', 'secrets', 'description', 'labels', 'scope'];
  const deployments = items.map((raw, i) => {
    const where = items.length > 1 ? `${source}: deployment ${i + 1}` : source;
    if (!raw || typeof raw !== 'object') throw new UsageError(`${where} must be a map with name and secrets`);
    const item = raw as Record<string, unknown>;
    if (typeof item.name !== 'string' || !item.name) throw new UsageError(`${where}: name is required`);
    const secretsRaw = item.secrets ?? [];
    if (!Array.isArray(secretsRaw)) throw new UsageError(`${where}: secrets must be a list`);
    const secrets = secretsRaw.map((s, j) => {
      const name = typeof s === 'string' ? s : s && typeof s === 'object' ? (s as Record<string, unknown>).name : undefined;
      if (typeof name !== 'string' || !name) throw new UsageError(`${where}: secrets[${j}] must be a name or a map with a name`);
      return name;
    });
    const ignored = Object.keys(item).filter((k) => !used.includes(k));
    if (ignored.length) notes.push(`${where}: ignored ${ignored.join(', ')} (lockbox uses name and secrets)`);
    if (item.description !== undefined && typeof item.description !== 'string') throw new UsageError(`${where}: description must be text`);
    return {
      name: item.name,
      secrets,
      description: item.description as string | undefined,
      labels: item.labels as Record<string, string> | undefined,
      scope: item.scope as DeploymentSpec['scope'],
    };
  });
  return { deployments, notes };
}

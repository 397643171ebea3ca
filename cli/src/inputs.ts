/**
 * CLI input parsing: `KEY=VALUE`, `KEY=@file` (the file's bytes) and `KEY=-` (standard input,
 * for one key at most), `k=v` labels and `KEY=SUB` sub-paths, and deployment files for
 * `deployment apply`. The file of `lockbox apply` is apply-file.ts.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { userRecord } from '../../shared/src/user-keys.js';

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

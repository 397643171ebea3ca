/**
 * Where a secret lands under $BENTOML_HOME, shared by the daemon (collision checks when a
 * deployment attaches secrets) and the agent (what it writes):
 * - file mount: one file per key at `<path>/<sub-path of the key, if any>/<key>`;
 * - env mount: one env file at `<path>/<secret name>.<ext>`, ext `env` (dotenv), `sh` or `json`,
 *   whose variables are the keys.
 */
import { ownValue, userRecord } from './user-keys.js';
import type { MountSpec } from './validate.js';

/** A mount as the API carries it (fields may be absent). */
export interface MountMessage {
  kind?: string;
  path?: string;
  sub_paths?: Record<string, string>;
  format?: string;
}

/** The defaults, in one place for daemon and agent: kind "file", path = the secret's name, env format "dotenv". */
export function mountFromMessage(message: MountMessage | undefined, name: string): MountSpec {
  const kind = message?.kind || 'file';
  const format = message?.format || (kind === 'env' ? 'dotenv' : '');
  return { kind: kind as MountSpec['kind'], path: message?.path || name, subPaths: userRecord(Object.entries(message?.sub_paths ?? {})), format: format as MountSpec['format'] };
}

export const envFileExtensions = { dotenv: 'env', sh: 'sh', json: 'json' } as const;

export interface MountedSecret {
  name: string;
  mount: MountSpec;
  keys: string[];
}

/** Relative paths of the files a secret produces. */
export function mountedFiles(secret: MountedSecret): string[] {
  const { mount } = secret;
  if (mount.kind === 'env') return [`${mount.path}/${secret.name}.${envFileExtensions[mount.format || 'dotenv']}`];
  return secret.keys.map((key) => [mount.path, ownValue(mount.subPaths, key), key].filter(Boolean).join('/'));
}

/** Environment variables a secret provides (env mounts only). */
export function mountedEnvKeys(secret: MountedSecret): string[] {
  return secret.mount.kind === 'env' ? [...secret.keys] : [];
}

/**
 * What clashes when these secrets are mounted together: the same file from two secrets, a file
 * that another secret needs as a directory, or the same environment variable from two env
 * mounts. Each entry names the path or variable and the secrets.
 */
export function mountCollisions(secrets: MountedSecret[]): string[] {
  const problems: string[] = [];
  const files = new Map<string, string>();
  const envKeys = new Map<string, string>();
  for (const secret of secrets) {
    for (const file of mountedFiles(secret)) {
      const owner = files.get(file);
      if (owner !== undefined && owner !== secret.name) problems.push(`file "${file}" from secrets "${owner}" and "${secret.name}"`);
      else files.set(file, secret.name);
    }
    for (const key of mountedEnvKeys(secret)) {
      const owner = envKeys.get(key);
      if (owner !== undefined && owner !== secret.name) problems.push(`environment variable "${key}" from secrets "${owner}" and "${secret.name}"`);
      else envKeys.set(key, secret.name);
    }
  }
  for (const [file, owner] of files) {
    const parts = file.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (files.has(dir)) problems.push(`file "${dir}" from secret "${files.get(dir)}" is a directory for "${file}" from secret "${owner}"`);
    }
  }
  return problems;
}

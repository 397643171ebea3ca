/**
 * Turns the deployment's secrets into what lands on disk: one payload per mount directory (the
 * atomic writer's unit), plus the environment for `exec`. Everything the daemon sent is checked
 * again here: names, keys, mount paths and sub-paths, and clashes between secrets. A secret that
 * fails a check is left out and reported, never written somewhere else.
 */
import { envFileExtensions, mountCollisions, mountedFiles } from '../../shared/src/layout.js';
import { checkKeyName, checkMount, checkSecretName, type MountSpec } from '../../shared/src/validate.js';
import { userRecord } from '../../shared/src/user-keys.js';
import { renderEnvFile } from './env-format.js';

export interface HeldSecret {
  name: string;
  resourceGroup: string;
  uid: string;
  version: number;
  type: string;
  mount: MountSpec;
  data: Record<string, Buffer>;
}

export interface Rendered {
  /** mount path → (file path within it → content) */
  dirs: Map<string, Map<string, Buffer>>;
  /** mount path → the `..version` text ("name=version" lines) */
  versions: Map<string, string>;
  /** Variables of env mounts, for `exec`. */
  env: Record<string, string>;
  /** Human-readable, never a value. */
  problems: string[];
}

/** A Docker config.json for a container_registry secret. */
export function dockerConfig(data: Record<string, Buffer>): Buffer {
  const username = data.username?.toString('utf8') ?? '';
  const password = data.password?.toString('utf8') ?? '';
  const entry: Record<string, string> = { username, password, auth: Buffer.from(`${username}:${password}`).toString('base64') };
  if (data.email) entry.email = data.email.toString('utf8');
  return Buffer.from(JSON.stringify({ auths: { [data.server?.toString('utf8') ?? '']: entry } }, null, 2) + '\n');
}

/** What check() found for a held version (each version is its own object, checked once). */
const checked = new WeakMap<HeldSecret, string | undefined>();

function check(secret: HeldSecret): string | undefined {
  if (checked.has(secret)) return checked.get(secret);
  const problem = findProblem(secret);
  checked.set(secret, problem);
  return problem;
}

function findProblem(secret: HeldSecret): string | undefined {
  try {
    checkSecretName(secret.name);
    for (const key of Object.keys(secret.data)) checkKeyName(key, `${secret.name}.data`);
    checkMount(secret.mount, Object.keys(secret.data), `${secret.name}.mount`);
    return undefined;
  } catch (error) {
    return `secret "${secret.name}" left out: ${(error as Error).message}`;
  }
}

const shape = (s: HeldSecret) => ({ name: s.name, mount: s.mount, keys: s.type === 'container_registry' && s.mount.kind === 'file' ? ['config.json'] : Object.keys(s.data) });

/** Recent placements by the shapes they were made from: a new version rarely changes a shape. */
const placements = new Map<string, { left: Set<string>; problems: string[] }>();

/**
 * Which secrets are left out for clashing with one placed before them (the daemon refuses such
 * clashes at attach time; this guards against whatever it sends), decided by names, mounts and
 * keys alone, so it is worked out again only when one of those changes.
 */
function placement(accepted: HeldSecret[]): { left: Set<string>; problems: string[] } {
  const shapes = accepted.map(shape);
  const key = JSON.stringify(shapes);
  let found = placements.get(key);
  if (!found) {
    found = { left: new Set(), problems: [] };
    const placed: ReturnType<typeof shape>[] = [];
    for (const candidate of shapes) {
      const clashes = mountCollisions([...placed, candidate]);
      if (clashes.length) {
        found.left.add(candidate.name);
        found.problems.push(`secret "${candidate.name}" left out: ${clashes.join('; ')}`);
      } else placed.push(candidate);
    }
    if (placements.size >= 16) placements.clear();
    placements.set(key, found);
  }
  return found;
}

export function render(secrets: HeldSecret[]): Rendered {
  const rendered: Rendered = { dirs: new Map(), versions: new Map(), env: userRecord(), problems: [] };
  const accepted: HeldSecret[] = [];
  for (const secret of secrets) {
    const problem = check(secret);
    if (problem) rendered.problems.push(problem);
    else accepted.push(secret);
  }
  const { left, problems } = placement(accepted);
  rendered.problems.push(...problems);
  for (const secret of accepted) {
    if (left.has(secret.name)) continue;
    const { mount } = secret;
    const files = rendered.dirs.get(mount.path) ?? new Map<string, Buffer>();
    rendered.dirs.set(mount.path, files);
    rendered.versions.set(mount.path, (rendered.versions.get(mount.path) ?? '') + `${secret.name}=${secret.version}\n`);
    if (mount.kind === 'env') {
      const format = mount.format || 'dotenv';
      const file = renderEnvFile(format, secret.data);
      files.set(`${secret.name}.${envFileExtensions[format]}`, file.content);
      for (const { key, reason } of file.refused) rendered.problems.push(`secret "${secret.name}" key "${key}" left out of the ${format} env file: it ${reason}`);
      for (const note of file.notes) rendered.problems.push(`secret "${secret.name}" ${note}`);
      for (const [key, value] of Object.entries(secret.data)) {
        const text = value.toString('utf8');
        if (value.includes(0) || !Buffer.from(text, 'utf8').equals(value)) rendered.problems.push(`secret "${secret.name}" key "${key}" is not valid UTF-8 text; not passed to exec`);
        else rendered.env[key] = text;
      }
    } else if (secret.type === 'container_registry') {
      files.set('config.json', dockerConfig(secret.data));
    } else {
      for (const rel of mountedFiles({ name: secret.name, mount: { ...mount, path: '' }, keys: Object.keys(secret.data) })) {
        const key = rel.split('/').pop()!;
        files.set(rel.replace(/^\//, ''), secret.data[key]);
      }
    }
  }
  return rendered;
}

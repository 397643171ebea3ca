/**
 * What `lockbox apply` has to change: each declared secret or deployment against what lockboxd
 * holds now. Pure functions: the command reads the current state, these say which request to
 * send, if any. A change is described by key and field names only, never by a value.
 *
 * Updates carry the version they were planned against (`expected_version`) and the declared
 * type, so a change made by someone else between the plan and the write fails that item
 * (VERSION_CONFLICT) instead of being overwritten, and a type change is refused by lockboxd.
 */
import { mountFromMessage } from '../../shared/src/layout.js';
import { hasKey, userRecord } from '../../shared/src/user-keys.js';
import type { DeclaredDeployment, DeclaredSecret } from './apply-file.js';

export type Operation = 'create' | 'update' | 'delete' | 'unchanged';

export interface CurrentSecret {
  name: string;
  type: string;
  template: string;
  description: string;
  labels: Record<string, string>;
  mount?: { kind?: string; path?: string; sub_paths?: Record<string, string>; format?: string };
  data: Record<string, Uint8Array>;
  version: number;
}

export interface CurrentDeployment {
  name: string;
  secrets: string[];
  description: string;
  labels: Record<string, string>;
  version: number;
}

export interface Plan<Request> {
  operation: Operation;
  /** What differs, by name: `keys +A ~B -C`, `labels -team`, `mount`, … */
  changes: string[];
  /** The request to send; absent when nothing changes. */
  request?: Request;
}

/** Entries added, changed and removed between two maps, as `+a ~b -c` (names only). */
function mapDiff<T>(want: Record<string, T>, have: Record<string, T>, same: (a: T, b: T) => boolean) {
  const added = Object.keys(want).filter((k) => !hasKey(have, k));
  const changed = Object.keys(want).filter((k) => hasKey(have, k) && !same(want[k], have[k]));
  const removed = Object.keys(have).filter((k) => !hasKey(want, k));
  const text = [...added.map((k) => `+${k}`), ...changed.map((k) => `~${k}`), ...removed.map((k) => `-${k}`)].join(' ');
  return { added, changed, removed, text };
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** A mount with lockboxd's defaults filled in, comparable as JSON. */
function normalMount(mount: DeclaredSecret['mount'] | CurrentSecret['mount'], name: string): string {
  const spec = mountFromMessage({ kind: mount?.kind ?? '', path: mount?.path ?? '', sub_paths: mount?.sub_paths ?? {}, format: mount?.format ?? '' }, name);
  return JSON.stringify([spec.kind, spec.path, spec.format, Object.entries(spec.subPaths).sort()]);
}

export function planSecret(want: DeclaredSecret, have: CurrentSecret | undefined): Plan<object> {
  const { name } = want;
  if (!have) {
    const request = { create: { name, type: want.type, template: want.template, description: want.description, labels: want.labels, mount: want.mount, data: want.data } };
    return { operation: 'create', changes: [`keys ${Object.keys(want.data).join(' ')}`], request };
  }
  const changes: string[] = [];
  const update: Record<string, unknown> = { name, type: want.type, expected_version: have.version };
  if (want.type !== have.type) changes.push(`type ${have.type} → ${want.type}`);
  const keys = mapDiff(want.data, have.data, sameBytes);
  if (keys.text) {
    changes.push(`keys ${keys.text}`);
    update.set = userRecord([...keys.added, ...keys.changed].map((k) => [k, want.data[k]]));
    update.remove = keys.removed;
  }
  if (want.template !== (have.template || 'custom')) {
    changes.push(`template ${have.template || 'custom'} → ${want.template}`);
    update.template = want.template;
  }
  if (want.description !== (have.description ?? '')) {
    changes.push('description');
    update.description = want.description;
  }
  const labels = mapDiff(want.labels, have.labels ?? {}, (a, b) => a === b);
  if (labels.text) {
    changes.push(`labels ${labels.text}`);
    update.set_labels = userRecord([...labels.added, ...labels.changed].map((k) => [k, want.labels[k]]));
    update.remove_labels = labels.removed;
  }
  if (normalMount(want.mount, name) !== normalMount(have.mount, name)) {
    changes.push('mount');
    update.mount = want.mount ?? {};
  }
  return changes.length ? { operation: 'update', changes, request: { update } } : { operation: 'unchanged', changes };
}

export function planDeployment(want: DeclaredDeployment, have: CurrentDeployment | undefined): Plan<{ deployment: object; expected_version?: number }> {
  const deployment = { name: want.name, secrets: want.secrets, description: want.description, labels: want.labels };
  if (!have) return { operation: 'create', changes: [`secrets ${want.secrets.join(' ')}`], request: { deployment } };
  const changes: string[] = [];
  const present = (names: string[]) => userRecord(names.map((n) => [n, true] as const));
  const secrets = mapDiff(present(want.secrets), present(have.secrets ?? []), () => true);
  if (secrets.text) changes.push(`secrets ${secrets.text}`);
  if (want.description !== (have.description ?? '')) changes.push('description');
  const labels = mapDiff(want.labels, have.labels ?? {}, (a, b) => a === b);
  if (labels.text) changes.push(`labels ${labels.text}`);
  return changes.length ? { operation: 'update', changes, request: { deployment, expected_version: have.version } } : { operation: 'unchanged', changes };
}

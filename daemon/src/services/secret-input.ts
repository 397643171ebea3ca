/**
 * What a create or update asks for, read and checked before anything is stored: names, type,
 * template, description, labels, data, mount, and that the result is a valid secret (each key
 * mountable, the template's required keys present). Errors name the field as the caller sent it
 * (`secret.data`, `items[3].create.mount`, …).
 */
import { InvalidArgumentError } from '../../../shared/src/errors.js';
import { mountFromMessage } from '../../../shared/src/layout.js';
import { userRecord } from '../../../shared/src/user-keys.js';
import {
  checkData,
  checkDescription,
  checkKeyName,
  checkLabels,
  checkMount,
  checkRequiredKeys,
  checkSecretName,
  checkTemplate,
  checkType,
  type MountSpec,
  type SecretType,
} from '../../../shared/src/validate.js';
import type { SecretHead } from '../store/store.js';
import type { SecretInputMessage, UpdateSecretRequest } from './messages.js';

/** The fields a new version is made of, checked. */
export interface SecretFields {
  name: string;
  type: SecretType;
  template: string;
  description: string;
  labels: Record<string, string>;
  data: Record<string, Uint8Array>;
  mount: MountSpec;
}

function bytes(value: Uint8Array | undefined): Uint8Array {
  return value ?? new Uint8Array();
}

/** A secret's data, mount and template checked together. */
export function checkRecord(type: SecretType, template: string, data: Record<string, Uint8Array>, mount: MountSpec, fieldPrefix: string): void {
  checkData(data, `${fieldPrefix}data`);
  const keys = Object.keys(data);
  checkMount(mount, keys, `${fieldPrefix}mount`);
  checkRequiredKeys(type, template, data, `${fieldPrefix}data`);
}

/** A create's secret, every field checked; `field` prefixes the names in errors. */
export function readCreateInput(input: SecretInputMessage | undefined, field: string): SecretFields {
  const name = input?.name ?? '';
  checkSecretName(name, `${field}name`);
  const type = checkType(input?.type || 'opaque', `${field}type`);
  const template = checkTemplate(input?.template || 'custom', `${field}template`);
  const description = input?.description ?? '';
  checkDescription(description, `${field}description`);
  const labels = userRecord(Object.entries(input?.labels ?? {}));
  checkLabels(labels, `${field}labels`);
  const data = userRecord(Object.entries(input?.data ?? {}).map(([key, value]) => [key, bytes(value)] as const));
  if (Object.keys(data).length === 0) throw new InvalidArgumentError(`${field}data`, 'a secret needs at least one key');
  const mount = mountFromMessage(input?.mount, name);
  checkRecord(type, template, data, mount, field);
  return { name, type, template, description, labels, data, mount };
}

/** The edits of an update, checked on their own (before the secret is read). */
export interface UpdateEdits {
  set: Record<string, Uint8Array>;
  remove: string[];
  setLabels: Record<string, string>;
  removeLabels: string[];
}

export function readUpdateEdits(request: UpdateSecretRequest): UpdateEdits {
  checkSecretName(request.name ?? '');
  const set = userRecord(Object.entries(request.set ?? {}).map(([key, value]) => [key, bytes(value)] as const));
  const remove = request.remove ?? [];
  const setLabels = request.set_labels ?? {};
  const removeLabels = request.remove_labels ?? [];
  const changesSomething =
    Object.keys(set).length > 0 || remove.length > 0 || request.replace || request.description !== undefined ||
    Object.keys(setLabels).length > 0 || removeLabels.length > 0 || request.mount !== undefined || request.template !== undefined;
  if (!changesSomething)
    throw new InvalidArgumentError('update', 'changes nothing: give set, remove, replace, description, labels, mount or template');
  for (const key of remove) {
    checkKeyName(key, `remove[${JSON.stringify(key)}]`);
    if (key in set) throw new InvalidArgumentError(`remove[${JSON.stringify(key)}]`, 'a key cannot be both set and removed');
  }
  if (request.replace && remove.length > 0) throw new InvalidArgumentError('remove', 'replace already removes every key not in set');
  return { set, remove, setLabels, removeLabels };
}

/**
 * The next version's fields: the head with the edits applied, checked as a whole. `openCurrent`
 * decrypts the head's values; it runs only once the edits are known to fit the head's keys.
 */
export function applyUpdateEdits(head: SecretHead, request: UpdateSecretRequest, edits: UpdateEdits, openCurrent: () => Record<string, Uint8Array>): SecretFields {
  const name = head.name;
  for (const key of edits.remove)
    if (!head.keys.includes(key)) throw new InvalidArgumentError(`remove[${JSON.stringify(key)}]`, `secret "${name}" has no key "${key}"`);
  const data = userRecord([...(request.replace ? [] : Object.entries(openCurrent())), ...Object.entries(edits.set)]);
  for (const key of edits.remove) delete data[key]; // never one of edits.set (readUpdateEdits)
  if (Object.keys(data).length === 0) throw new InvalidArgumentError('remove', 'would leave the secret without keys; delete it instead');

  const template = request.template !== undefined ? checkTemplate(request.template || 'custom') : head.template;
  const description = request.description ?? head.description;
  checkDescription(description);
  const labels = userRecord([...Object.entries(head.labels), ...Object.entries(edits.setLabels)]);
  for (const key of edits.removeLabels) delete labels[key];
  checkLabels(labels);
  const mount = request.mount !== undefined ? mountFromMessage(request.mount, name) : { ...head.mount, subPaths: userRecord(Object.entries(head.mount.subPaths)) };
  if (request.mount === undefined)
    for (const key of Object.keys(mount.subPaths)) if (!(key in data)) delete mount.subPaths[key]; // a removed key's sub-path goes with it
  checkRecord(head.type, template, data, mount, '');
  return { name, type: head.type, template, description, labels, data, mount };
}

/**
 * NATS subjects for change notices: `lockbox.v1.changes.<tenant>.<resource group>.<name>`.
 * Each token is encoded so that any valid name is one valid subject token: "" (the main-tenant
 * resource group) becomes "_", and every byte outside [A-Za-z0-9_-] is percent-encoded ("*" →
 * "%2A", "." → "%2E"). Valid names never start with "_", so "_" cannot collide.
 */
export const CHANGES_PREFIX = 'lockbox.v1.changes';
/**
 * Deployment notices: `lockbox.v1.deployments.<tenant>.<resource group>.<deployment>`, same
 * encoding and payload shape (name is the deployment's), so an agent re-reads its deployment at
 * once when secrets are attached or detached.
 */
export const DEPLOYMENTS_PREFIX = 'lockbox.v1.deployments';
/**
 * A replica added a keyring key (`lockbox key rotate`): the others reload the keyring from the
 * database at once. The payload names the new key id; never key material.
 */
export const KEYRING_SUBJECT = 'lockbox.v1.keyring';

export function encodeSubjectToken(text: string): string {
  if (text === '') return '_';
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeSubjectToken(token: string): string {
  if (token === '_') return '';
  return decodeURIComponent(token);
}

export function changeSubject(tenant: string, resourceGroup: string, name: string): string {
  return [CHANGES_PREFIX, encodeSubjectToken(tenant), encodeSubjectToken(resourceGroup), encodeSubjectToken(name)].join('.');
}

export function deploymentSubject(tenant: string, resourceGroup: string, name: string): string {
  return [DEPLOYMENTS_PREFIX, encodeSubjectToken(tenant), encodeSubjectToken(resourceGroup), encodeSubjectToken(name)].join('.');
}

/** What a notice carries: never a value. */
export interface ChangeNotice {
  tenant: string;
  resource_group: string;
  name: string;
  uid: string;
  version: number;
  operation: 'create' | 'update' | 'delete' | 'restore';
  seq: number;
  time: string;
}

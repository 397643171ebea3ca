/**
 * ListSecrets, once the secrets service has authorized the scope:
 * (1) the filters (type, template, labels) are checked, and bound with the scope into a filter
 *     key that the page's cursor carries (list-cursor.ts: a cursor is refused under other filters);
 * (2) the scope's heads are read by name after the cursor's name, a chunk at a time (keyset
 *     pagination: stable under concurrent writes, nothing skipped or repeated), each chunk
 *     checked for integrity (a damaged version is reported, never listed);
 * (3) a resource group's list is merged by name with the tenant-wide secrets visible there
 *     (mergeByName), unless own_only or the scope is every group ("*");
 * (4) the first `limit` matches are the page; one more says whether a next page exists.
 */
import { keyedHash } from '../../../shared/src/crypto.js';
import { InvalidArgumentError } from '../../../shared/src/errors.js';
import { limits } from '../../../shared/src/limits.js';
import { ownValue } from '../../../shared/src/user-keys.js';
import { checkTemplate, checkType, splitAssignment } from '../../../shared/src/validate.js';
import type { Keyring } from '../security/keyring.js';
import type { SealedRecords } from '../security/record-integrity.js';
import type { ScopeKey, SecretHead, Store } from '../store/store.js';
import { ListCursors } from './list-cursor.js';
import { headMessage, type ListSecretsRequest, type SecretMessage } from './messages.js';

export class SecretList {
  private readonly cursors: ListCursors;

  constructor(
    private readonly store: Store,
    private readonly sealed: SealedRecords,
    private readonly keyring: Keyring,
  ) {
    this.cursors = new ListCursors(keyring.tokenKey);
  }

  async list(scope: ScopeKey, request: ListSecretsRequest): Promise<{ secrets: SecretMessage[]; next_cursor: string }> {
    const limit = request.limit || limits.defaultListLimit; // (1)
    if (limit < 1 || limit > limits.maxListLimit) throw new InvalidArgumentError('limit', `must be between 1 and ${limits.maxListLimit}`);
    const type = request.type ? checkType(request.type) : '';
    const template = request.template ? checkTemplate(request.template) : '';
    const labelFilter = (request.labels ?? []).map((text, i) => splitAssignment(text, `labels[${i}]`));
    const ownOnly = Boolean(request.own_only) || scope.resourceGroup === '*';
    const filterKey = keyedHash(JSON.stringify([scope, type, template, labelFilter, ownOnly]), this.keyring.tokenKey).slice(0, 16);
    const after = request.cursor ? this.cursors.decode(request.cursor, filterKey) : '';
    const matches = (head: SecretHead) =>
      (!type || head.type === type) && (!template || head.template === template) && labelFilter.every(([k, v]) => ownValue(head.labels, k) === v);
    const chunk = Math.min(limits.maxListLimit, limit + 1);
    const own = this.headsAfter(scope, after, chunk);
    const visible = ownOnly ? own : mergeByName(own, this.headsAfter({ ...scope, resourceGroup: '*' }, after, chunk)); // (3)
    const found: SecretHead[] = [];
    for await (const head of visible) {
      if (matches(head)) found.push(head);
      if (found.length > limit) break;
    }
    const page = found.slice(0, limit); // (4)
    const more = found.length > limit;
    return { secrets: page.map((h) => headMessage(h)), next_cursor: more ? this.cursors.encode(page[page.length - 1].name, filterKey) : '' };
  }

  /** (2) A scope's intact heads after the name `after`, by name, read `chunk` rows at a time. */
  private async *headsAfter(scope: ScopeKey, after: string, chunk: number): AsyncGenerator<SecretHead> {
    for (let cursorName = after; ; ) {
      const heads = await this.store.listHeads(scope, cursorName, chunk);
      await this.sealed.learn(heads);
      yield* this.sealed.intact(heads);
      if (heads.length < chunk) return;
      cursorName = heads[heads.length - 1].name;
    }
  }
}

/**
 * A group's list (DESIGN: "a resource group's list includes the tenant-wide secrets visible
 * there, marked"): two name-ordered streams, the group's own and the tenant-wide, merged by name;
 * where both hold a name, the group's own is listed (it is what a read there finds) and the
 * tenant-wide one skipped. Names are ASCII (validate.ts), so `<` orders them as the store does.
 */
export async function* mergeByName(own: AsyncIterator<SecretHead>, wide: AsyncIterator<SecretHead>): AsyncGenerator<SecretHead> {
  let a = await own.next();
  let b = await wide.next();
  while (!a.done || !b.done) {
    if (!a.done && (b.done || a.value.name <= b.value.name)) {
      if (!b.done && b.value.name === a.value.name) b = await wide.next();
      yield a.value;
      a = await own.next();
    } else if (!b.done) {
      yield b.value;
      b = await wide.next();
    }
  }
}

/**
 * What the sessions reached by one change share (session-registry.ts step 4). A rotation reaches
 * every session of the deployments that resolve the secret; for N agents, the work that does not
 * depend on the session is done once per wave instead of N times:
 * 1. the token check, once per token (a deployment's agents share theirs): still a check against
 *    the token authority (revocation, expiry), so a revoked token ends each of its sessions;
 * 2. resolving a name in a scope (the head the deployment sees);
 * 3. the delivery audit entry, one per (token, version), counting its sessions (read-audit.ts);
 * 4. the push itself: sessions whose push is the same (same deployment, same versions sent, same
 *    names removed, same deployment field) get one message, built, given one nonce and encoded
 *    once; the same encoded bytes are written to each of their streams.
 * A wave lives only as long as the runs that carry it; a later change starts a new wave, so
 * nothing remembered here outlives the change that caused it (no expiry to tune).
 */
import { createHash } from 'node:crypto';
import type { Principal } from '../security/auth.js';
import { readKey } from '../security/read-audit.js';
import type { AuditDraft, ScopeKey, SecretHead } from '../store/store.js';

const digests = new WeakMap<SecretHead, string>();
let waves = 0;

/** What the agent echoes back to say which bytes it holds: from the sealed payload, so comparing needs no key. */
export function digestOf(head: SecretHead): string {
  let digest = digests.get(head);
  if (digest === undefined) {
    digest = createHash('sha256').update(head.envelope.ciphertext).digest('base64url').slice(0, 22);
    digests.set(head, digest);
  }
  return digest;
}

export class PushWave {
  /** Creation order: when two runs merge, the later wave's fresher reads win (session-registry.ts step 6). */
  readonly serial = ++waves;
  private readonly principals = new Map<string, Promise<Principal>>();
  private readonly heads = new Map<string, Promise<SecretHead | undefined>>();
  private readonly drafts = new Map<string, { draft: AuditDraft; key: string }>();
  private readonly pushes = new Map<string, Promise<object[]>>();

  /** (1) */
  principal(token: string | undefined, authenticate: (token: string | undefined) => Promise<Principal>): Promise<Principal> {
    const key = token ?? '';
    let principal = this.principals.get(key);
    if (!principal) this.principals.set(key, (principal = authenticate(token)));
    return principal;
  }

  /** (2) */
  head(scope: ScopeKey, name: string, resolve: (scope: ScopeKey, name: string) => Promise<SecretHead | undefined>): Promise<SecretHead | undefined> {
    const key = `${scope.tenant}\0${scope.resourceGroup}\0${name}`;
    let head = this.heads.get(key);
    if (!head) this.heads.set(key, (head = resolve(scope, name)));
    return head;
  }

  /** (3) The entry (and its read-audit key) recording a delivery of `head` under `principal`'s token. */
  delivery(principal: Principal, head: SecretHead, draft: () => AuditDraft): { draft: AuditDraft; key: string } {
    const key = `${principal.tokenId}\0${head.uid}\0${head.version}`;
    let entry = this.drafts.get(key);
    if (!entry) {
      const made = draft();
      this.drafts.set(key, (entry = { draft: made, key: readKey(made) }));
    }
    return entry;
  }

  /** (4) The encoded pages of the push named by `signature`, built by the first session that needs them. */
  push(signature: string, build: () => Promise<object[]>): Promise<object[]> {
    let pages = this.pushes.get(signature);
    if (!pages) {
      this.pushes.set(signature, (pages = build()));
      pages.catch(() => this.pushes.delete(signature));
    }
    return pages;
  }
}

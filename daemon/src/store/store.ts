/**
 * The storage contract. The service code talks only to this interface, so a PostgreSQL store can
 * stand beside the SQLite one without touching it. Every method is async; a store decides how it
 * groups writes into transactions, but each `commit` call is atomic and durable when it resolves.
 */
import { FailedPreconditionError, type LockboxError } from '../../../shared/src/errors.js';
import type { Envelope } from '../../../shared/src/crypto.js';
import type { MountSpec, SecretType } from '../../../shared/src/validate.js';

export interface ScopeKey {
  tenant: string;
  resourceGroup: string;
}

export type Operation = 'create' | 'update' | 'delete' | 'restore';

/** One stored version: metadata in clear, values sealed. */
export interface VersionRecord {
  tenant: string;
  resourceGroup: string;
  name: string;
  uid: string;
  version: number;
  operation: Operation;
  restoredFrom: number;
  type: SecretType;
  template: string;
  description: string;
  labels: Record<string, string>;
  mount: MountSpec;
  keys: string[];
  createTime: string;
  changeSeq: number;
  envelope: Envelope;
  /**
   * Set when the stored row cannot be read as a version (metadata that is not valid JSON or not of
   * the right shape): what is wrong, for the log. Such a record is never served (record-integrity.ts).
   */
  damaged?: string;
}

/** The current version of a secret plus the secret's own creation time. */
export interface SecretHead extends VersionRecord {
  secretCreateTime: string;
}

/** The notice sent for a change, without its sequence number (the store assigns it). */
export interface NoticeDraft extends Pick<VersionRecord, 'tenant' | 'resourceGroup' | 'name' | 'uid' | 'version' | 'operation'> {
  subject: string;
  time: string;
}

export interface StoredNotice extends NoticeDraft {
  seq: number;
}

/**
 * A change to apply atomically with its outbox notice.
 * - create: fails ALREADY_EXISTS when the name is taken.
 * - update / restore: the head must still be `expectUid` at `expectVersion` (ABORTED otherwise,
 *   NOT_FOUND when gone).
 * - delete: as update; removes the secret and every kept version.
 */
export interface Change {
  operation: Operation;
  scope: ScopeKey;
  name: string;
  expectUid?: string;
  expectVersion?: number;
  /** The new version (absent for delete). Its changeSeq is filled in by the store. */
  record?: VersionRecord;
  notice: NoticeDraft;
  /** Checked on create, inside the transaction, so concurrent creates cannot pass a limit. */
  quotas?: Quotas;
}

export interface Quotas {
  /** Secrets in the tenant-wide scope ("*") per tenant. */
  maxTenantWideSecrets: number;
  /** Named resource groups in use (holding a secret or a deployment) per tenant. */
  maxResourceGroups: number;
}

/** One audit log entry as the service describes it; the store adds seq and the hash chain. */
export interface AuditDraft {
  time: string;
  tokenId: string;
  role: string;
  tenant: string;
  resourceGroup: string;
  action: string;
  target: string;
  version: number;
  outcome: string;
  /** The first call's request id when several reads share the entry. */
  requestId: string;
  /**
   * Identical value reads (same token, secret, version and outcome) written in one commit share
   * one entry that counts them; 1 (or absent) for everything else.
   */
  count?: number;
}

export interface AuditRecord extends AuditDraft {
  seq: number;
  prevHash: string;
  hash: string;
}

/** Computes an entry's hash from its fields and the previous entry's hash. */
export type AuditHasher = (entry: Omit<AuditRecord, 'hash'>) => string;

export interface AuditFilter {
  tenant?: string;
  afterSeq: number;
  limit: number;
  action?: string;
  target?: string;
}

export interface DeploymentRecord {
  tenant: string;
  resourceGroup: string;
  name: string;
  uid: string;
  version: number;
  secrets: string[];
  description: string;
  labels: Record<string, string>;
  createTime: string;
  updateTime: string;
}

export interface DeploymentChange {
  operation: 'create' | 'update' | 'delete';
  record: DeploymentRecord;
  /** update: the version it replaces (ABORTED otherwise). */
  expectVersion?: number;
  quotas?: Quotas;
}

export type CommitOutcome = { ok: true; seq: number } | { ok: false; error: LockboxError };

export interface IdempotencyRecord {
  tenant: string;
  key: string;
  method: string;
  fingerprint: string;
  createTime: string;
  /**
   * Builds the response to store, from the outcomes, inside the transaction; undefined stores
   * nothing (an outcome a retry of the same call may change: a lost compare-and-set it retries).
   */
  respond: (outcomes: CommitOutcome[]) => string | undefined;
}

export interface StoredIdempotency {
  method: string;
  fingerprint: string;
  response: string;
  createTime: string;
}

export interface TokenRecord {
  id: string;
  hash: string;
  role: string;
  tenant: string;
  resourceGroups: string[];
  deployment: string;
  deploymentResourceGroup: string;
  description: string;
  createTime: string;
  expireTime: string;
  revokeTime: string;
  createdBy: string;
}

export interface WrappedKeyRow {
  uid: string;
  version: number;
  tenant: string;
  resourceGroup: string;
  name: string;
  masterKeyId: string;
  wrappedKey: Uint8Array;
}

/** What an agent last reported. */
export interface AgentReport {
  agentId: string;
  tenant: string;
  deployment: string;
  deploymentResourceGroup: string;
  tokenId: string;
  lastSeenTime: string;
  /**
   * 0 for a one-shot run (`lockbox-agent once`): it resyncs never, so it is never stale; it is
   * listed as a run until --agent-retention removes it (service-agent.ts step (6)).
   */
  resyncIntervalSeconds: number;
  problems: string[];
}

export interface AppliedRecord {
  agentId: string;
  tenant: string;
  resourceGroup: string;
  name: string;
  uid: string;
  version: number;
  appliedTime: string;
}

export interface Store {
  getHead(scope: ScopeKey, name: string): Promise<SecretHead | undefined>;
  getVersion(uid: string, version: number): Promise<VersionRecord | undefined>;
  /** Heads of a scope ordered by name, strictly after `afterName`. */
  listHeads(scope: ScopeKey, afterName: string, limit: number): Promise<SecretHead[]>;
  listVersions(uid: string): Promise<VersionRecord[]>;

  /**
   * Applies each change in its own savepoint (a failed change does not undo the others), records
   * the idempotency entry, and commits once. Throws IdempotencyReplayError when `idempotency`'s
   * key is already stored.
   */
  /** `deadline`: the caller's (ms since the epoch); past it when the write begins, it fails DEADLINE_EXCEEDED unwritten. */
  commit(changes: Change[], idempotency?: IdempotencyRecord, audit?: (outcomes: CommitOutcome[]) => AuditDraft[], deadline?: number): Promise<CommitOutcome[]>;
  getIdempotency(tenant: string, key: string): Promise<StoredIdempotency | undefined>;
  pruneIdempotency(before: string): Promise<number>;

  pendingNotices(limit: number): Promise<StoredNotice[]>;
  /**
   * For stores that several publishers share: the oldest notices no other publisher holds,
   * held for this one for a while (a publisher that dies lets go when the hold runs out).
   * Without it, publishers use pendingNotices.
   */
  claimNotices?(limit: number): Promise<StoredNotice[]>;
  deleteNotices(seqs: number[]): Promise<void>;

  countByMasterKey(): Promise<Map<string, number>>;
  listWrappedKeys(notMasterKeyId: string, limit: number): Promise<WrappedKeyRow[]>;
  /** Replaces wrapped keys whose master key id is still `row.masterKeyId`; returns how many. */
  replaceWrappedKeys(rows: WrappedKeyRow[], newMasterKeyId: string, wrapped: Uint8Array[]): Promise<number>;

  /** The keyring, sealed under the root key (security/keyring.ts). */
  readonly keyring: KeyringStore;

  insertToken(token: TokenRecord, audit?: AuditDraft[], deadline?: number): Promise<void>;
  getToken(id: string): Promise<TokenRecord | undefined>;
  countTokens(): Promise<number>;
  /** Tokens of a tenant (every tenant when undefined), oldest first. */
  listTokens(tenant: string | undefined): Promise<TokenRecord[]>;
  /** Marks a token revoked; returns it, or undefined when there is no such token. */
  revokeToken(id: string, time: string, audit?: AuditDraft[], deadline?: number): Promise<TokenRecord | undefined>;

  getDeployment(scope: ScopeKey, name: string): Promise<DeploymentRecord | undefined>;
  listDeployments(scope: ScopeKey): Promise<DeploymentRecord[]>;
  /** Deployments of a tenant that list `secretName` (in any resource group). */
  deploymentsListing(tenant: string, secretName: string): Promise<DeploymentRecord[]>;
  writeDeployment(change: DeploymentChange, audit: AuditDraft[], deadline?: number): Promise<void>;

  appendAudit(entries: AuditDraft[]): Promise<void>;
  /**
   * For each report: replaces what the agent holds with `applied`, and its heartbeat. All in one
   * transaction (a rollout to N agents is N reports); rows an agent still holds are updated in
   * place, not deleted and inserted again.
   */
  reportAgents(reports: Array<{ report: AgentReport; applied: AppliedRecord[] }>): Promise<void>;
  /** Agents that reported holding the secret, with their last report. */
  agentsHolding(tenant: string, resourceGroup: string, name: string): Promise<Array<AppliedRecord & { report: AgentReport }>>;
  listAudit(filter: AuditFilter): Promise<AuditRecord[]>;
  /** The chain's last entry (seq 0 and hash '' when empty), everything committed chained first. */
  auditHead(): Promise<{ seq: number; hash: string }>;
  /**
   * Removes the entries older than `before` up to a cut (security/audit-prune.ts steps (2)-(4)):
   * the cut is the last entry whose time is before `before`, never the chain's last entry; `sign`
   * turns the cut into the checkpoint kept in meta under AUDIT_CUT_META, in the same transaction.
   * Nothing is removed (and `cut` is undefined) when the cut is not past the one kept already.
   */
  pruneAudit(before: string, sign: (cut: { seq: number; hash: string }) => string): Promise<{ removed: number; cut?: string }>;
  /** Removes agents (and what they applied) last seen before `silentSince`; returns how many. */
  pruneAgents(silentSince: string): Promise<number>;

  /** Whether the database holds anything a keyring sealed or keyed: secrets, tokens, deployments or audit entries. */
  hasData(): Promise<boolean>;
  /** A fact about the database itself (e.g. which keyring sealed it), from the `meta` table. */
  getMeta(name: string): Promise<string | undefined>;
  /** Stores `value` under `name` unless a value is there already; returns the stored value. */
  claimMeta(name: string, value: string): Promise<string>;

  /** Stores on a server: resolves when it answers (readiness). */
  ping?(): Promise<void>;

  /**
   * Writes an online, consistent copy of the database to `path` (a new file), values still
   * sealed. Stores that cannot (PostgreSQL: pg_dump does it) leave it out.
   */
  backup?(path: string): Promise<void>;

  /** Notices waiting in the outbox (the outbox depth metric). */
  countNotices(): Promise<number>;
  /** Every agent's last heartbeat and resync interval (the agents-by-state metric). */
  agentHeartbeats(): Promise<Array<Pick<AgentReport, 'lastSeenTime' | 'resyncIntervalSeconds'>>>;

  close(): Promise<void>;
}

/** The meta row holding the signed checkpoint of the last audit prune (JSON AuditCheckpoint). */
export const AUDIT_CUT_META = 'audit_cut';

/** One row of the keyring table: a key sealed under the root key `rootKeyId`. */
export interface KeyringRow {
  id: string;
  sealedKey: Uint8Array;
  rootKeyId: string;
  createTime: string;
  /** `active` wraps new data keys (one at most), `retired` still opens, `token` is the token-hash key. */
  state: 'active' | 'retired' | 'token';
}

/** The keyring table; each write is one transaction. */
export interface KeyringStore {
  list(): Promise<KeyringRow[]>;
  /** Inserts `rows` only when the keyring is empty (two replicas starting at once: one wins); returns whether it did. */
  seed(rows: KeyringRow[]): Promise<boolean>;
  /**
   * Retires the active key and adds `row` as the active one; a ConflictError when another rotation
   * won, a FailedPreconditionError (ROOT_KEY_MISMATCH, rootKeyMismatch) when any row is sealed under
   * another root key than `row` (a rotate-root committed since the caller read the keyring): a
   * keyring under two root keys can be opened by no replica.
   */
  add(row: KeyringRow): Promise<void>;
  /**
   * Replaces every row's sealed key with `sealed` (by id) and its root key id with `toRootKeyId`,
   * all or nothing: a ConflictError unless every row was sealed under `fromRootKeyId` and is in `sealed`.
   */
  reseal(fromRootKeyId: string, toRootKeyId: string, sealed: Map<string, Uint8Array>): Promise<number>;
}

/** Writing under `heldRootKeyId` while the keyring is under `keyringRootKeyId` (KeyringStore.add, Keyring). */
export function rootKeyMismatch(keyringRootKeyId: string, heldRootKeyId: string): FailedPreconditionError {
  return new FailedPreconditionError(
    `the keyring is now sealed under root key ${keyringRootKeyId}, and this replica holds ${heldRootKeyId}: restart it with the new root key, then run this again`,
    'ROOT_KEY_MISMATCH',
  );
}

/** Told what a store's writes cost (daemon/src/metrics.ts); never a value, a name or a key. */
export interface StoreObserver {
  /** One transaction committed: how long it took and how many changes or jobs it carried. */
  committed(seconds: number, size: number): void;
  /** An audit entry entered the chain `lagSeconds` after the time it records. */
  auditWritten(lagSeconds: number): void;
}

/** Thrown by `commit` when the idempotency key was used before. */
export class IdempotencyReplayError extends Error {
  override name = 'IdempotencyReplayError';
  constructor(readonly stored: StoredIdempotency) {
    super('idempotency key already used');
  }
}

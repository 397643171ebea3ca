/**
 * The audit hash chain on PostgreSQL (store-postgres.ts step (4)): entries are written with their
 * change into audit_pending (a), then moved into the chain in batches under one advisory lock by
 * whichever replica gets there first (b), so the chain stays one line across replicas while the
 * changes themselves do not wait for each other.
 * (c) After a commit a replica only tries the lock (pg_try_advisory_xact_lock): when another
 * replica holds it, this one does not queue a connection behind it but looks again a moment
 * later (the holder may have read the pending rows before this commit), so replicas never wait
 * on each other's chaining and one sequencer at a time does the work for all of them. Only
 * readers of the chain (list, head, verify) wait for the lock, to see everything committed.
 */
import type pg from 'pg';
import { AUDIT_CUT_META, type AuditDraft, type AuditHasher, type StoreObserver } from './store.js';
import type { PostgresPool } from './store-postgres-pool.js';

/** Advisory lock id (pg_advisory_xact_lock) of the chain; migrations-postgres.ts has 2. */
const AUDIT_LOCK = 0x6c6278_01; // "lbx" 1
/** How long a replica that found the chain busy waits before it looks again (c). */
const BUSY_RETRY_MS = 20;

export class PostgresAuditChain {
  /** Connections whose open transaction left audit entries pending. */
  private readonly wanted = new WeakSet<pg.PoolClient>();
  /** Group transactions (store-postgres-group-commit.ts (3)): their entries, written once at the end. */
  private readonly deferred = new Map<pg.PoolClient, AuditDraft[]>();
  private chaining: Promise<void> | undefined;
  private chainAgain = false;
  private closing = false;

  constructor(
    private readonly db: PostgresPool,
    private readonly hasher: AuditHasher,
    private readonly observer?: StoreObserver,
  ) {
    db.hooks = {
      committed: (client) => {
        if (this.wanted.has(client)) this.schedule(); // (b) for the entries it left pending
      },
      released: (client) => {
        this.wanted.delete(client);
        this.deferred.delete(client);
      },
    };
  }

  /**
   * (4a) Puts entries in audit_pending, inside the caller's transaction: they are durable with the
   * change they describe, and the transaction takes no lock for them.
   */
  async insert(db: pg.PoolClient, entries: AuditDraft[]): Promise<void> {
    if (entries.length === 0) return;
    const later = this.deferred.get(db);
    if (later) later.push(...entries);
    else await this.write(db, entries);
  }

  /** A group transaction begins: its entries wait for writeDeferred, one INSERT for all its jobs. */
  defer(db: pg.PoolClient): void {
    this.deferred.set(db, []);
  }

  /** The group transaction is about to commit: its entries go in now, in the order they came. */
  async writeDeferred(db: pg.PoolClient): Promise<void> {
    const entries = this.deferred.get(db) ?? [];
    this.deferred.delete(db);
    if (entries.length) await this.write(db, entries);
  }

  private async write(db: pg.PoolClient, entries: AuditDraft[]): Promise<void> {
    await db.query('INSERT INTO audit_pending (entry) SELECT unnest($1::text[])', [entries.map((e) => JSON.stringify(e))]);
    this.wanted.add(db);
  }

  /** Chains pending entries soon (one run at a time per replica; a run started meanwhile repeats). */
  private schedule(): void {
    if (this.chaining) {
      this.chainAgain = true;
      return;
    }
    this.chaining = (async () => {
      do {
        this.chainAgain = false;
        // (c) busy: another replica is chaining; look again once it has had time to finish
        const done = await this.chainPending(false).catch(() => true); // an error: the next write, list or verify retries
        if (!done) {
          this.chainAgain = true;
          await new Promise((r) => setTimeout(r, BUSY_RETRY_MS));
        }
      } while (this.chainAgain && !this.closing);
    })().finally(() => (this.chaining = undefined));
  }

  /**
   * (4b) Moves pending entries into the chain, oldest first, under the one audit lock: each gets
   * the next seq and a hash over its fields and the previous hash. One lock hold per batch,
   * whichever replica runs it, so the chain stays a single line without serialising the changes.
   * `wait` false (c): returns false at once when another replica holds the lock; true once
   * nothing this call saw pending is left.
   */
  async chainPending(wait = true): Promise<boolean> {
    for (;;) {
      const moved = await this.db.transaction(async (db) => {
        if (wait) await db.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
        else if (!(await db.query('SELECT pg_try_advisory_xact_lock($1) AS got', [AUDIT_LOCK])).rows[0].got) return -1;
        const pending = (await db.query('SELECT id, entry FROM audit_pending ORDER BY id LIMIT 1000')).rows as Array<{ id: string; entry: string }>;
        if (pending.length === 0) return 0;
        const last = (await db.query('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1')).rows[0] as { seq: string; hash: string } | undefined;
        let previous = { seq: Number(last?.seq ?? 0), hash: last?.hash ?? '' };
        const columns: unknown[][] = Array.from({ length: 14 }, () => []);
        for (const { entry: text } of pending) {
          const draft = JSON.parse(text) as AuditDraft;
          const entry = { ...draft, count: draft.count ?? 1, seq: previous.seq + 1, prevHash: previous.hash };
          const hash = this.hasher(entry);
          [entry.seq, entry.time, entry.tokenId, entry.role, entry.tenant, entry.resourceGroup, entry.action, entry.target, entry.version, entry.outcome, entry.requestId, entry.count, entry.prevHash, hash].forEach(
            (value, i) => columns[i].push(value),
          );
          previous = { seq: entry.seq, hash };
          this.observer?.auditWritten((Date.now() - Date.parse(entry.time)) / 1000);
        }
        await db.query(
          `INSERT INTO audit (seq, time, token_id, role, tenant, resource_group, action, target, version, outcome, request_id, count, prev_hash, hash)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::int[], $13::text[], $14::text[])`,
          columns,
        );
        await db.query('DELETE FROM audit_pending WHERE id = ANY($1::bigint[])', [pending.map((p) => p.id)]);
        return pending.length;
      });
      if (moved < 1000) return moved >= 0;
    }
  }

  /**
   * Store.pruneAudit: under the chain's lock, so no batch (4b) reads the head while entries go.
   * What is pending is chained first: the cut is taken over the whole chain as committed.
   */
  async prune(before: string, sign: (cut: { seq: number; hash: string }) => string): Promise<{ removed: number; cut?: string }> {
    await this.chainPending();
    return this.db.transaction(async (db) => {
      await db.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
      const head = Number((await db.query('SELECT MAX(seq) AS seq FROM audit')).rows[0].seq ?? 0);
      // Replicas chain drafts in commit order, so seq order and time can disagree here: the cut is
      // just before the first entry that is not older (service-audit.ts step (2)), never MAX(seq) of the older.
      const newer = (await db.query('SELECT MIN(seq) AS seq FROM audit WHERE time >= $1', [before])).rows[0].seq;
      const kept = (await db.query('SELECT value FROM meta WHERE name = $1', [AUDIT_CUT_META])).rows[0] as { value: string } | undefined;
      const cutSeq = Math.min(newer == null ? head : Number(newer) - 1, head - 1); // the last entry stays: the chain goes on from it
      if (cutSeq <= (kept ? (JSON.parse(kept.value) as { seq: number }).seq : 0)) return { removed: 0 };
      const { hash } = (await db.query('SELECT hash FROM audit WHERE seq = $1', [cutSeq])).rows[0] as { hash: string };
      const cut = sign({ seq: cutSeq, hash });
      const removed = (await db.query('DELETE FROM audit WHERE seq <= $1', [cutSeq])).rowCount ?? 0;
      await db.query('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [AUDIT_CUT_META, cut]);
      return { removed, cut };
    });
  }

  /** Waits for a run in flight, then chains what is left (else the next replica to run does). */
  async close(): Promise<void> {
    this.closing = true;
    await this.chaining;
    await this.chainPending().catch(() => {});
  }
}

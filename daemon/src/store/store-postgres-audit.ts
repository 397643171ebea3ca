/**
 * The audit hash chain on PostgreSQL (store-postgres.ts step (4)): entries are written with their
 * change into audit_pending (a), then moved into the chain in batches under one advisory lock by
 * whichever replica gets there first (b), so the chain stays one line across replicas while the
 * changes themselves do not wait for each other.
 */
import type pg from 'pg';
import { AUDIT_CUT_META, type AuditDraft, type AuditHasher, type StoreObserver } from './store.js';
import type { PostgresPool } from './store-postgres-pool.js';

/** Advisory lock id (pg_advisory_xact_lock) of the chain; migrations-postgres.ts has 2. */
const AUDIT_LOCK = 0x6c6278_01; // "lbx" 1

export class PostgresAuditChain {
  /** Connections whose open transaction left audit entries pending. */
  private readonly wanted = new WeakSet<pg.PoolClient>();
  private chaining: Promise<void> | undefined;
  private chainAgain = false;

  constructor(
    private readonly db: PostgresPool,
    private readonly hasher: AuditHasher,
    private readonly observer?: StoreObserver,
  ) {
    db.hooks = {
      committed: (client) => {
        if (this.wanted.has(client)) this.schedule(); // (b) for the entries it left pending
      },
      released: (client) => this.wanted.delete(client),
    };
  }

  /**
   * (4a) Puts entries in audit_pending, inside the caller's transaction: they are durable with the
   * change they describe, and the transaction takes no lock for them.
   */
  async insert(db: pg.PoolClient, entries: AuditDraft[]): Promise<void> {
    if (entries.length === 0) return;
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
        await this.chainPending().catch(() => {}); // the next write, list or verify retries
      } while (this.chainAgain);
    })().finally(() => (this.chaining = undefined));
  }

  /**
   * (4b) Moves pending entries into the chain, oldest first, under the one audit lock: each gets
   * the next seq and a hash over its fields and the previous hash. One lock hold per batch,
   * whichever replica runs it, so the chain stays a single line without serialising the changes.
   */
  async chainPending(): Promise<void> {
    for (;;) {
      const moved = await this.db.transaction(async (db) => {
        await db.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
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
      if (moved < 1000) return;
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
      const older = Number((await db.query('SELECT MAX(seq) AS seq FROM audit WHERE time < $1', [before])).rows[0].seq ?? 0);
      const kept = (await db.query('SELECT value FROM meta WHERE name = $1', [AUDIT_CUT_META])).rows[0] as { value: string } | undefined;
      const cutSeq = Math.min(older, head - 1); // the last entry stays: the chain goes on from it
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
    await this.chaining;
    await this.chainPending().catch(() => {});
  }
}

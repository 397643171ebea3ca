/**
 * Group commit for the PostgreSQL store (store-postgres.ts step (8)), as store-sqlite-group-commit.ts
 * does for SQLite. One transaction per write costs a BEGIN, a COMMIT and a WAL flush each, and
 * capped creates near 1,000/s at 64 in flight; writes that arrive together share them instead:
 * 1. Every write (`commit()`, deployments, tokens, audit entries) queues a job. At most `maxOpen`
 *    group transactions are open at once; a free one takes every queued job (up to `maxGroup`).
 *    A write that finds a free transaction starts at the next turn of the event loop, so a write
 *    alone waits for nothing; under load the queue fills while transactions run and they grow.
 * 2. Each job runs in its own SAVEPOINT (each change of a `commit()` in a nested one): a job that
 *    fails rolls back alone and the others commit. The row locks, version checks and quota locks
 *    of store-postgres-changes.ts are taken inside it as before. A job whose every write is in a
 *    savepoint of its own already (a `commit()` without an idempotency key) skips the job's
 *    savepoint, two round trips fewer; if such a job fails anyway, nothing can undo only it, so
 *    the whole transaction is rolled back and every job of it runs again alone (4).
 * 3. The audit entries of all jobs wait until the end and go in with one INSERT (the `hooks`),
 *    then one COMMIT makes everything durable; only then are the callers' promises resolved, so
 *    nothing is acknowledged before it is committed. Batches stay small enough (32) that their
 *    subtransactions fit PostgreSQL's per-backend cache of 64.
 * 4. Two group transactions (of two replicas, or two of one) can lock rows in opposite orders,
 *    which PostgreSQL breaks by failing one with a deadlock; a job failed that way (or by a
 *    serialization failure) runs again in a transaction of its own, so one conflict never fails
 *    an unrelated write. Any other failure of the transaction (the database lost) fails its jobs.
 * 5. A job may carry its caller's deadline: the wait for a free transaction and its connection is
 *    here, after the services' beforeDeadline check, so the job checks it again when it starts
 *    inside the transaction. Past it, that job alone fails DEADLINE_EXCEEDED and writes nothing
 *    (its caller was already told so); the group's other jobs are unaffected.
 */
import type pg from 'pg';
import { pastDeadline } from '../../../shared/src/errors.js';
import type { StoreObserver } from './store.js';
import { SavepointLost, type PostgresPool } from './store-postgres-pool.js';

interface Job {
  run: (db: pg.PoolClient) => Promise<unknown>;
  /** (2) false: every write of `run` is in a savepoint of its own already. */
  savepoint: boolean;
  /** What the hooks may write for the job before it runs (the creates of store-postgres-bulk-create.ts). */
  payload: unknown;
  /** (5) The caller's deadline, ms since the epoch. */
  deadline?: number;
  resolve: (value: any) => void;
  reject: (error: unknown) => void;
}

type Settled = { job: Job; ok: true; value: unknown } | { job: Job; ok: false; error: unknown };

/** (5) The job's caller gave up before the job began: it must not write. */
export const lateJob = (deadline: number | undefined) => pastDeadline(deadline, 'the write began in the store');

/** Deadlock detected, serialization failure: the transaction lost a race, not the argument. (4) */
const retryable = (error: unknown) => ['40P01', '40001'].includes((error as { code?: string })?.code ?? '');

/** (2) A job without a savepoint of its own failed: the transaction cannot keep the others only. */
class RunAlone extends Error {}

/** Told when a group transaction begins and just before it commits (the deferred audit entries). */
export interface GroupHooks {
  /** Before the jobs run, with their payloads. */
  begin(db: pg.PoolClient, payloads: unknown[]): Promise<void>;
  beforeCommit(db: pg.PoolClient): Promise<void>;
}
export class PostgresGroupCommit {
  private queue: Job[] = [];
  private open = 0;
  private scheduled = false;
  private closed = false;
  private idle: Array<() => void> = [];

  constructor(
    private readonly db: PostgresPool,
    /** Most group transactions open at once (each holds one pooled connection). */
    private readonly maxOpen: number,
    /** Most jobs in one transaction. */
    private readonly maxGroup: number,
    private readonly hooks: GroupHooks,
    private readonly observer?: StoreObserver,
  ) {}

  /**
   * (1) Queues `run` to execute inside the next group transaction, on its connection; `savepoint`
   * false only when every write it makes is in a savepoint of its own (2).
   */
  write<T>(run: (db: pg.PoolClient) => Promise<T>, savepoint = true, payload?: unknown, deadline?: number): Promise<T> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, savepoint, payload, deadline, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.open >= this.maxOpen || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.open < this.maxOpen && this.queue.length > 0) void this.flush(this.queue.splice(0, this.maxGroup));
    });
  }

  /** One group transaction: steps (2) to (4). */
  private async flush(jobs: Job[]): Promise<void> {
    this.open++;
    try {
      const started = process.hrtime.bigint();
      let settled: Settled[];
      try {
        settled = await this.db.transaction((db) => this.runJobs(db, jobs));
      } catch (error) {
        if (retryable(error) || error instanceof RunAlone) {
          await Promise.all(jobs.map((job) => this.flushAlone(job))); // (2), (4)
          return;
        } else {
          for (const job of jobs) job.reject(error);
          return;
        }
      }
      this.observer?.committed(Number(process.hrtime.bigint() - started) / 1e9, jobs.length);
      const again: Job[] = [];
      for (const s of settled) {
        if (s.ok) s.job.resolve(s.value);
        else if (retryable(s.error)) again.push(s.job);
        else s.job.reject(s.error);
      }
      await Promise.all(again.map((job) => this.flushAlone(job)));
    } finally {
      this.open--;
      this.schedule();
      if (this.open === 0 && this.queue.length === 0) for (const wake of this.idle.splice(0)) wake();
    }
  }

  /** (2) Each job in its own savepoint; a job's failure is its own, unless the rollback fails too. */
  private async runJobs(db: pg.PoolClient, jobs: Job[]): Promise<Settled[]> {
    const late = new Map(jobs.map((job) => [job, lateJob(job.deadline)] as const)); // (5) checked once, before anything is written
    await this.hooks.begin(db, jobs.map((job) => (late.get(job) ? undefined : job.payload))).catch((error: unknown) => {
      throw jobs.length > 1 ? new RunAlone('writing the group\'s creates failed', { cause: error }) : error;
    });
    const settled: Settled[] = [];
    for (const job of jobs) {
      const refused = late.get(job); // (5) its creates were not given to the hooks either
      if (refused) {
        settled.push({ job, ok: false, error: refused });
        continue;
      }
      try {
        settled.push({ job, ok: true, value: job.savepoint ? await this.db.savepoint(db, () => job.run(db), 'job') : await job.run(db) });
      } catch (error) {
        if (error instanceof SavepointLost) throw error; // the transaction unwraps it
        if (!job.savepoint) throw jobs.length > 1 ? new RunAlone('a job without a savepoint failed', { cause: error }) : error; // roll back
        settled.push({ job, ok: false, error });
      }
    }
    await this.hooks.beforeCommit(db);
    return settled;
  }

  /** (2), (4) A job again in a transaction of its own (once: a second failure is its answer). */
  private async flushAlone(job: Job): Promise<void> {
    try {
      const [settled] = await this.db.transaction((db) => this.runJobs(db, [job]));
      if (settled.ok) job.resolve(settled.value);
      else job.reject(settled.error);
    } catch (error) {
      job.reject(error);
    }
  }

  /** Waits for the queued and running jobs, then refuses new ones; false when it was closed already. */
  async close(): Promise<boolean> {
    if (this.closed) return false;
    if (this.open > 0 || this.queue.length > 0) await new Promise<void>((wake) => this.idle.push(wake));
    this.closed = true;
    return true;
  }
}

/**
 * Group commit for the SQLite store. better-sqlite3 is synchronous and an fsync costs
 * milliseconds, so one commit per call would cap durable writes at a few hundred per second.
 * Instead:
 * 1. Every write (`commit()`, deployments, tokens, audit entries) queues a job and schedules one
 *    flush with setImmediate, so every job that arrives in the same turn of the event loop
 *    (including those that arrived while the previous flush was syncing) joins one transaction.
 * 2. The flush opens one IMMEDIATE transaction and runs each job inside its own SAVEPOINT (a
 *    failed job rolls back alone), and each change of a `commit()` inside a nested SAVEPOINT.
 * 3. One COMMIT (one fsync) makes all of them durable; only then are the callers' promises
 *    resolved, so nothing is acknowledged before it is on disk.
 * 4. As store-postgres-group-commit.ts (5): a job carrying its caller's deadline checks it when it
 *    starts inside the transaction; past it, that job alone fails DEADLINE_EXCEEDED unwritten.
 */
import type Database from 'better-sqlite3';
import { lateJob } from './store-postgres-group-commit.js';
import type { StoreObserver } from './store.js';

interface Job {
  run: () => unknown;
  /** (4) The caller's deadline, ms since the epoch. */
  deadline?: number;
  resolve: (value: any) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit {
  private queue: Job[] = [];
  private flushScheduled = false;
  private closed = false;

  constructor(
    private readonly db: Database.Database,
    /** Most jobs in one transaction. */
    private readonly maxGroup: number,
    private readonly observer?: StoreObserver,
  ) {}

  /** Step (1): queues `run` to execute inside the next group transaction. */
  write<T>(run: () => T, deadline?: number): Promise<T> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, deadline, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Runs every queued job in one transaction: steps (2) and (3). */
  private flush(): void {
    this.flushScheduled = false;
    const jobs = this.queue.splice(0, this.maxGroup);
    if (this.queue.length > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    if (jobs.length === 0) return;
    const settled: Array<{ job: Job; ok: boolean; value?: unknown; error?: unknown }> = [];
    const started = process.hrtime.bigint();
    try {
      this.db.exec('BEGIN IMMEDIATE');
    } catch (error) {
      for (const job of jobs) job.reject(error);
      return;
    }
    for (const job of jobs) {
      const late = lateJob(job.deadline); // (4) before the job writes anything
      if (late) {
        settled.push({ job, ok: false, error: late });
        continue;
      }
      this.db.exec('SAVEPOINT job');
      try {
        const value = job.run();
        this.db.exec('RELEASE job');
        settled.push({ job, ok: true, value });
      } catch (error) {
        this.db.exec('ROLLBACK TO job');
        this.db.exec('RELEASE job');
        settled.push({ job, ok: false, error });
      }
    }
    try {
      this.db.exec('COMMIT');
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      for (const job of jobs) job.reject(error);
      return;
    }
    this.observer?.committed(Number(process.hrtime.bigint() - started) / 1e9, jobs.length);
    for (const { job, ok, value, error } of settled) {
      if (ok) job.resolve(value);
      else job.reject(error);
    }
  }

  /** Waits for the queued jobs, then refuses new ones; false when it was closed already. */
  async close(): Promise<boolean> {
    if (this.closed) return false;
    while (this.queue.length > 0 || this.flushScheduled) await new Promise((r) => setImmediate(r));
    this.closed = true;
    return true;
  }
}

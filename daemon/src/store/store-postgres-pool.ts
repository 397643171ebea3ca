/**
 * The PostgreSQL store's connections: a pool, one query outside a transaction, a transaction on
 * one pooled connection, savepoints inside it. A database that cannot be reached becomes
 * UNAVAILABLE here, once, for every caller (store-postgres.ts step (1)).
 */
import pg from 'pg';
import { UnavailableError } from '../../../shared/src/errors.js';

/**
 * A database that cannot be reached (refused, reset, timed out, shutting down, connection lost)
 * is UNAVAILABLE, which tells a client to retry, perhaps on another replica. Other errors pass.
 */
export function unavailable(error: unknown): unknown {
  const { code } = (error ?? {}) as { code?: string };
  const lost =
    (typeof code === 'string' && (/^08/.test(code) || /^57P0[1-3]$/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'].includes(code))) ||
    code === '57014' || // statement_timeout: the database did not finish in time
    timedOut(error) ||
    /Connection terminated/.test((error as Error)?.message ?? '');
  return lost ? new UnavailableError('the database is unreachable; retry (another replica may answer)', { cause: error }) : error;
}

/** BIGINT (int8) columns read as numbers, as the API carries them: nothing past 2^53 is ever written. */
const INT8_OID = 20;
export function typeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
  if (oid === INT8_OID) return Number;
  return format ? pg.types.getTypeParser(oid, format) : pg.types.getTypeParser(oid);
}

/** The client gave up waiting (connect or query timeout): that connection cannot be reused. */
function timedOut(error: unknown): boolean {
  return /^(Query read timeout|timeout exceeded when trying to connect|Connection terminated due to connection timeout)/.test((error as Error)?.message ?? '');
}

/**
 * Bounded waits on a database that hangs (a stopped server, a network that drops packets):
 * connecting, each query (client side, so a server that never answers is given up on), each
 * statement (server side) and a transaction left idle are all bounded by `timeoutMs`; TCP
 * keepalive finds dead peers. A connection that timed out is discarded, never reused.
 */
export function poolOptions(url: string, timeoutMs: number, max: number): pg.PoolConfig {
  return {
    connectionString: url,
    max,
    types: { getTypeParser: typeParser },
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    statement_timeout: timeoutMs,
    idle_in_transaction_session_timeout: timeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

/** The rollback to a savepoint failed: the transaction itself is broken (the connection lost). */
export class SavepointLost extends Error {
  override name = 'SavepointLost';
}

export const isUniqueViolation = (error: unknown) => (error as { code?: string }).code === '23505';

/** Told when a transaction's connection commits and when it goes back to the pool. */
export interface TransactionHooks {
  committed(db: pg.PoolClient): void;
  released(db: pg.PoolClient): void;
}

export class PostgresPool {
  /** Set by the store once the parts that want to know are built (the audit chain). */
  hooks: TransactionHooks = { committed: () => {}, released: () => {} };

  constructor(readonly pool: pg.Pool) {}

  /** A query outside a transaction; a lost database becomes UNAVAILABLE. */
  query(text: string, values?: unknown[]): Promise<pg.QueryResult> {
    return this.pool.query(text, values).catch((error: unknown) => {
      throw unavailable(error);
    });
  }

  /** (1) Runs `work` in one transaction; rolls back on any error. */
  async transaction<T>(work: (db: pg.PoolClient) => Promise<T>): Promise<T> {
    const db = await this.pool.connect().catch((error: unknown) => {
      throw unavailable(error);
    });
    // A connection the server drops while checked out emits 'error'; without a listener that
    // would crash the daemon. The query in flight fails on its own; the client is discarded.
    let broken: Error | undefined;
    const onError = (error: Error) => (broken = error);
    db.on('error', onError);
    try {
      await db.query('BEGIN');
      const result = await work(db);
      await db.query('COMMIT');
      this.hooks.committed(db);
      return result;
    } catch (thrown) {
      const error = thrown instanceof SavepointLost ? thrown.cause : thrown;
      if (timedOut(error)) broken ??= error as Error; // the server may still answer it later: never reuse
      else await db.query('ROLLBACK').catch(() => {});
      throw unavailable(error);
    } finally {
      this.hooks.released(db);
      db.off('error', onError);
      db.release(broken);
    }
  }

  /**
   * Runs `work` in a savepoint of the current transaction: a failure rolls back only it. When the
   * rollback itself fails the transaction is broken, and SavepointLost says so to every level.
   */
  async savepoint<T>(db: pg.PoolClient, work: () => Promise<T>, name = 'change'): Promise<T> {
    await db.query(`SAVEPOINT ${name}`);
    try {
      const result = await work();
      await db.query(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (error) {
      if (error instanceof SavepointLost) throw error;
      try {
        await db.query(`ROLLBACK TO SAVEPOINT ${name}`);
        await db.query(`RELEASE SAVEPOINT ${name}`);
      } catch (lost) {
        throw new SavepointLost('the transaction broke while rolling back a savepoint', { cause: lost });
      }
      throw error;
    }
  }

  end(): Promise<void> {
    return this.pool.end();
  }
}

/** The PostgreSQL store's keyring table (store.ts, KeyringStore); each write one transaction. */
import type pg from 'pg';
import { ConflictError } from '../../../shared/src/errors.js';
import { isUniqueViolation, type PostgresPool } from './store-postgres-pool.js';
import { rootKeyMismatch, type KeyringRow, type KeyringStore } from './store.js';

const changed = () =>
  new ConflictError(`the keyring changed while it was being re-sealed (a key was added, or another replica changed the root key); run it again`, 'KEYRING_CHANGED');

export class PostgresKeyring implements KeyringStore {
  constructor(private readonly db: PostgresPool) {}

  async list(): Promise<KeyringRow[]> {
    const { rows } = await this.db.query('SELECT * FROM keyring ORDER BY create_time, id');
    return rows.map((r) => ({ id: r.id, sealedKey: r.sealed_key, rootKeyId: r.root_key_id, createTime: r.create_time, state: r.state }));
  }

  /** The table lock makes two replicas seeding an empty keyring take turns: the second finds rows. */
  seed(rows: KeyringRow[]): Promise<boolean> {
    return this.db.transaction(async (db) => {
      await db.query('LOCK TABLE keyring IN EXCLUSIVE MODE');
      if ((await db.query('SELECT 1 FROM keyring LIMIT 1')).rowCount) return false;
      for (const row of rows) await insert(db, row);
      return true;
    });
  }

  /**
   * The table lock (the one reseal takes) orders this against a rotate-root on another replica:
   * once it is held, a row under another root key means the re-seal committed after the caller
   * read the keyring, and adding ours would leave the keyring under two root keys. Two rotations
   * at once take turns on it; the unique index on the active state still guards the insert.
   */
  async add(row: KeyringRow): Promise<void> {
    try {
      await this.db.transaction(async (db) => {
        await db.query('LOCK TABLE keyring IN EXCLUSIVE MODE');
        const other = await db.query('SELECT root_key_id FROM keyring WHERE root_key_id <> $1 LIMIT 1', [row.rootKeyId]);
        if (other.rowCount) throw rootKeyMismatch(other.rows[0].root_key_id, row.rootKeyId);
        await db.query("UPDATE keyring SET state = 'retired' WHERE state = 'active'");
        await insert(db, row);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ConflictError('another replica added a keyring key at the same moment; run it again', 'ROTATION_IN_PROGRESS');
      throw error;
    }
  }

  reseal(fromRootKeyId: string, toRootKeyId: string, sealed: Map<string, Uint8Array>): Promise<number> {
    return this.db.transaction(async (db) => {
      await db.query('LOCK TABLE keyring IN EXCLUSIVE MODE');
      const { rows } = await db.query('SELECT id, root_key_id FROM keyring');
      if (rows.some((r) => r.root_key_id !== fromRootKeyId || !sealed.has(r.id))) throw changed();
      for (const r of rows) await db.query('UPDATE keyring SET sealed_key = $1, root_key_id = $2 WHERE id = $3', [Buffer.from(sealed.get(r.id)!), toRootKeyId, r.id]);
      return rows.length;
    });
  }
}

function insert(db: pg.PoolClient, row: KeyringRow) {
  return db.query('INSERT INTO keyring (id, sealed_key, root_key_id, create_time, state) VALUES ($1, $2, $3, $4, $5)', [
    row.id,
    Buffer.from(row.sealedKey),
    row.rootKeyId,
    row.createTime,
    row.state,
  ]);
}

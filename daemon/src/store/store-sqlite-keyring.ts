/** The SQLite store's keyring table (store.ts, KeyringStore); writes go through the group commit. */
import type Database from 'better-sqlite3';
import { ConflictError } from '../../../shared/src/errors.js';
import type { GroupCommit } from './store-sqlite-group-commit.js';
import type { KeyringRow, KeyringStore } from './store.js';

interface Row {
  id: string;
  sealed_key: Buffer;
  root_key_id: string;
  create_time: string;
  state: KeyringRow['state'];
}

export class SqliteKeyring implements KeyringStore {
  constructor(
    private readonly db: Database.Database,
    private readonly group: GroupCommit,
  ) {}

  async list(): Promise<KeyringRow[]> {
    const rows = this.db.prepare<[], Row>('SELECT * FROM keyring ORDER BY create_time, id').all();
    return rows.map((r) => ({ id: r.id, sealedKey: r.sealed_key, rootKeyId: r.root_key_id, createTime: r.create_time, state: r.state }));
  }

  seed(rows: KeyringRow[]): Promise<boolean> {
    return this.group.write(() => {
      if (this.db.prepare('SELECT 1 FROM keyring LIMIT 1').get()) return false;
      for (const row of rows) this.insert(row);
      return true;
    });
  }

  add(row: KeyringRow): Promise<void> {
    return this.group.write(() => {
      this.db.prepare("UPDATE keyring SET state = 'retired' WHERE state = 'active'").run();
      this.insert(row);
    });
  }

  reseal(fromRootKeyId: string, toRootKeyId: string, sealed: Map<string, Uint8Array>): Promise<number> {
    return this.group.write(() => {
      const rows = this.db.prepare<[], Pick<Row, 'id' | 'root_key_id'>>('SELECT id, root_key_id FROM keyring').all();
      if (rows.some((r) => r.root_key_id !== fromRootKeyId || !sealed.has(r.id)))
        throw new ConflictError(`the keyring changed while it was being re-sealed (a key was added, or another replica changed the root key); run it again`, 'KEYRING_CHANGED');
      const update = this.db.prepare('UPDATE keyring SET sealed_key = ?, root_key_id = ? WHERE id = ?');
      for (const r of rows) update.run(Buffer.from(sealed.get(r.id)!), toRootKeyId, r.id);
      return rows.length;
    });
  }

  private insert(row: KeyringRow): void {
    this.db
      .prepare('INSERT INTO keyring (id, sealed_key, root_key_id, create_time, state) VALUES (?, ?, ?, ?, ?)')
      .run(row.id, Buffer.from(row.sealedKey), row.rootKeyId, row.createTime, row.state);
  }
}

/**
 * `lockboxd restore FILE --data-dir DIR`: puts a backup (`lockbox backup`) in place as the
 * database of a new data dir, offline.
 * 1. DIR must hold no database yet: a restore never overwrites one.
 * 2. FILE must be a whole SQLite database (integrity_check) of lockbox's schema, at a version
 *    this lockboxd knows (a newer one is refused, as at start).
 * 3. It is copied to DIR/lockbox.db.partial (0600, DIR 0700), synced, and renamed into place.
 * The keyring is in the backup, sealed under the root key, which is not: give lockboxd the same
 * root key (--root-key-file, LOCKBOX_ROOT_KEY, or a copy of master.key in DIR) when it starts on
 * DIR; without it, it refuses to start, naming the root key id it needs (keyring-check.ts).
 */
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { SettingError } from '../../shared/src/settings.js';
import { sqliteSteps } from './store/migrations-sqlite.js';
import { pendingSteps } from './store/migrations.js';

export function restoreBackup(file: string, dataDir: string): { path: string; schemaVersion: number } {
  const target = join(resolve(dataDir), 'lockbox.db');
  if (existsSync(target)) throw new SettingError(`--data-dir ${dataDir}: holds a database already; restore into a new data dir`); // (1)
  if (!existsSync(file)) throw new SettingError(`restore: ${file} does not exist`);
  let schemaVersion: number;
  let db: Database.Database | undefined;
  try { // (2)
    db = new Database(file, { readonly: true, fileMustExist: true });
    const integrity = db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') throw new Error(`integrity check: ${String(integrity)}`);
    schemaVersion = Number((db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0);
    db.prepare('SELECT COUNT(*) FROM secret_versions').get();
  } catch (error) {
    throw new SettingError(`restore: ${file} is not a lockbox backup: ${(error as Error).message}`);
  } finally {
    db?.close();
  }
  try {
    pendingSteps(sqliteSteps, schemaVersion);
  } catch (error) {
    throw new SettingError(`restore: ${(error as Error).message}`);
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 }); // (3)
  const partial = `${target}.partial`;
  copyFileSync(file, partial);
  const fd = openSync(partial, 'r+', 0o600);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(partial, target);
  return { path: target, schemaVersion };
}

/**
 * A fresh PostgreSQL schema per test. The server is LOCKBOX_TEST_DATABASE_URL when that names
 * one; otherwise a server of this test file's own (postgres-server.ts), started on first use and
 * stopped when the file ends. Nothing here ever tries the machine's 127.0.0.1:5432 by itself.
 */
import { randomBytes } from 'node:crypto';
import tap from 'tap';
import pg from 'pg';
import { startOwnPostgres, type OwnPostgres } from './postgres-server.js';

let base: Promise<string> | undefined;
let own: OwnPostgres | undefined;

/** The server every schema is made in: the named one, or ours (started once per test file). */
export function postgresBaseUrl(): Promise<string> {
  base ??= (async () => {
    const named = process.env.LOCKBOX_TEST_DATABASE_URL;
    if (named) return named;
    own = await startOwnPostgres();
    tap.teardown(() => own?.stop());
    return own.url;
  })();
  return base;
}

/** The server this file started, if it started one (for tests of the helper itself). */
export function ownPostgres(): OwnPostgres | undefined {
  return own;
}

async function connectAdmin(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: await postgresBaseUrl() });
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
  return client;
}

/** Creates an empty schema and returns a URL whose connections use it; the schema is dropped at teardown. */
export async function freshSchema(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const schema = `lbx_test_${randomBytes(6).toString('hex')}`;
  const admin = await connectAdmin();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  t.teardown(async () => {
    const c = await connectAdmin();
    await c.query(`DROP SCHEMA ${schema} CASCADE`);
    await c.end();
  });
  const url = new URL(await postgresBaseUrl());
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

/** A fresh PostgreSQL schema per test in the `test` database (trust auth on 127.0.0.1:5432). */
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import pg from 'pg';

/** LOCKBOX_TEST_DATABASE_URL, else the `test` database as this OS user, else as `postgres`. */
const candidates = process.env.LOCKBOX_TEST_DATABASE_URL
  ? [process.env.LOCKBOX_TEST_DATABASE_URL]
  : [`postgres://${userInfo().username}@127.0.0.1:5432/test`, 'postgres://postgres@127.0.0.1:5432/test'];
let postgresBase: string | undefined;

async function connectAdmin(): Promise<pg.Client> {
  let lastError: unknown;
  for (const url of postgresBase ? [postgresBase] : candidates) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      postgresBase = url;
      return client;
    } catch (error) {
      lastError = error;
      await client.end().catch(() => {});
    }
  }
  throw lastError;
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
  const url = new URL(postgresBase!);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

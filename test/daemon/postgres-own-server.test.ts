/**
 * The PostgreSQL tests bring their own server (test/helpers/postgres-server.ts): a fresh initdb
 * in a temp dir on a free port, never the machine's 127.0.0.1:5432, stopped and removed at the end.
 */
import t from 'tap';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { findPostgresBin, startOwnPostgres } from '../helpers/postgres-server.js';
import { freshSchema, ownPostgres, postgresBaseUrl } from '../helpers/postgres.js';
import { createRequest, startTestDaemon, tempDir } from '../helpers/daemon.js';

async function query(url: string, sql: string): Promise<any[]> {
  const client = new pg.Client({ connectionString: url });
  // A server going down mid-query ends the connection with an 'error' event as well as the
  // rejected call: the call's rejection is what the caller sees; the event must not crash the test.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

t.test('a server of its own: initdb in a temp dir, a free port on 127.0.0.1, gone after stop', async (t) => {
  const server = await startOwnPostgres();
  t.teardown(() => server.stop());
  t.not(server.port, 5432);
  t.equal(server.url, `postgres://postgres@127.0.0.1:${server.port}/postgres`);
  const [row] = await query(server.url, "SELECT current_setting('data_directory') AS dir, current_setting('port') AS port, inet_server_addr()::text AS addr");
  t.same(row, { dir: server.dataDir, port: String(server.port), addr: '127.0.0.1/32' }, 'the server answering is the one in our temp dir');
  await server.stop();
  t.notOk(existsSync(server.dataDir), 'the data dir is removed');
  await t.rejects(query(server.url, 'SELECT 1'), { code: 'ECONNREFUSED' }, 'and the server is gone');
});

t.test('without LOCKBOX_TEST_DATABASE_URL the schemas live in the own server, and lockboxd runs on them', { skip: process.env.LOCKBOX_TEST_DATABASE_URL ? 'LOCKBOX_TEST_DATABASE_URL names a server' : false }, async (t) => {
  const url = await freshSchema(t);
  const own = ownPostgres();
  t.ok(own, 'a server was started for this file');
  t.equal(await postgresBaseUrl(), own!.url);
  t.equal(new URL(url).port, String(own!.port));
  const d = await startTestDaemon(t, { databaseUrl: url });
  await d.call('CreateSecret', createRequest('on-own-server', { K: 'v' }));
  const tables = await query(url, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'secrets'");
  t.same(tables.map((r) => r.table_schema), [new URL(url).searchParams.get('options')!.replace('-c search_path=', '')], 'the daemon wrote into the fresh schema');
});

t.test('initdb and postgres are found on PATH first, else under /usr/lib/postgresql/<newest>/bin', async (t) => {
  const dir = tempDir(t);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const name of ['initdb', 'postgres']) {
    writeFileSync(join(bin, name), '#!/bin/sh\nexit 1\n');
    chmodSync(join(bin, name), 0o755);
  }
  t.equal(findPostgresBin({ PATH: `/nonexistent:${bin}` }), bin);
  const debian = findPostgresBin({ PATH: '/nonexistent' });
  if (existsSync('/usr/lib/postgresql')) t.match(debian, /^\/usr\/lib\/postgresql\/\d+(\.\d+)?\/bin$/);
  else t.equal(debian, undefined);
});

t.test('a test process that is killed leaves no server behind (the watchdog stops it)', async (t) => {
  const { spawn } = await import('node:child_process');
  const helper = join(import.meta.dirname, '..', '..', 'dist', 'test', 'helpers', 'postgres-server.js');
  // A separate process starts a server, prints where it is, and is then SIGKILLed (no exit handler runs).
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import('${helper}').then(async (m) => { const s = await m.startOwnPostgres(); console.log(JSON.stringify(s)); setInterval(() => {}, 1000); })`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const line = await new Promise<string>((resolve) => child.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  const server = JSON.parse(line) as { url: string; dataDir: string };
  t.same(await query(server.url, 'SELECT 1 AS one'), [{ one: 1 }], 'the killed process\'s server was up');
  child.kill('SIGKILL');
  for (;;) {
    // While it shuts down a connection may also be cut mid-way; only a refused one means it is gone.
    const refused = await query(server.url, 'SELECT 1').then(() => false, (error: { code?: string }) => error.code === 'ECONNREFUSED');
    if (refused && !existsSync(server.dataDir)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.pass('the server stopped and its dir is gone');
});

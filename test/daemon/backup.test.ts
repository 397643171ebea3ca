/**
 * Backup and restore: `lockbox backup` while writes go on, values still sealed in the file,
 * `lockboxd restore` into a new data dir, and the restored daemon serves the same secrets with an
 * audit chain that verifies.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { ServerWritableStreamImpl } from '@grpc/grpc-js/build/src/server-call.js';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runCli } from '../../cli/src/cli.js';
import { createRequest, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { daemonBin } from '../helpers/spawn.js';
import { until } from '../helpers/wait.js';
import { loadServices } from '../../shared/src/proto.js';

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), readStdin: () => Buffer.alloc(0), cwd: process.cwd() });
  return { code, stdout, stderr };
}

t.test('backup online, restore into a new data dir, same secrets, the audit chain verifies', async (t) => {
  const d = await startTestDaemon(t);
  const canary = 'sk-backup-canary-91c2e';
  await d.call('CreateSecret', createRequest('openai', { OPENAI_API_KEY: canary }, { template: 'openai' }));
  await d.call('UpdateSecret', { name: 'openai', set: { OPENAI_API_KEY: Buffer.from(`${canary}-v2`) } });
  const out = join(tempDir(t), 'lockbox.backup');
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];

  // Online: creates keep landing while the backup is taken.
  const writes = Array.from({ length: 40 }, (_, i) => d.call('CreateSecret', createRequest(`during-${i}`, { V: `value-${i}` })));
  const backup = await cli([...g, 'backup', '--file', out]);
  await Promise.all(writes);
  t.equal(backup.code, 0, backup.stderr);
  t.match(backup.stdout, /^wrote a backup of \d+ bytes to .*lockbox\.backup \(sha256 [0-9a-f]{64}\)\n$/);
  t.notOk(existsSync(`${out}.partial`), 'no partial file left');
  const bytes = readFileSync(out);
  t.notOk(bytes.includes(Buffer.from(canary)), 'values stay sealed in the backup');
  const copy = new Database(out, { readonly: true });
  t.equal(copy.pragma('integrity_check', { simple: true }), 'ok', 'a consistent database');
  copy.close();
  t.equal((await cli([...g, 'backup', '--file', out])).code, 2, 'an existing file is never overwritten');

  const restored = tempDir(t);
  const r = spawnSync(process.execPath, [daemonBin, 'restore', out, '--data-dir', restored], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^restored .* \(schema version \d+\); start lockboxd with --data-dir/);
  const again = spawnSync(process.execPath, [daemonBin, 'restore', out, '--data-dir', restored], { encoding: 'utf8' });
  t.equal(again.status, 2);
  t.match(again.stderr, /holds a database already/);
  const junk = join(tempDir(t), 'junk');
  writeFileSync(junk, 'not a database');
  const bad = spawnSync(process.execPath, [daemonBin, 'restore', junk, '--data-dir', tempDir(t)], { encoding: 'utf8' });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /is not a lockbox backup/);

  copyFileSync(join(d.dataDir, 'master.key'), join(restored, 'master.key')); // the key travels apart from the backup
  const back = await startTestDaemon(t, { dataDir: restored });
  const secret = await back.call('GetSecret', { name: 'openai', include_values: true }, { token: d.adminToken });
  t.equal(secret.data.OPENAI_API_KEY.toString(), `${canary}-v2`);
  t.equal(secret.version, 2);
  const verified = await back.rpc('AuditService', 'VerifyAudit', {}, { token: d.adminToken });
  t.equal(verified.ok, true, verified.problem);
  t.ok(Number(verified.checked) >= 3, `${verified.checked} entries verified, the backup's own included`);
});

t.test('only an operator may take a backup; on PostgreSQL it points to pg_dump', async (t) => {
  const d = await startTestDaemon(t);
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'reader' });
  const out = join(tempDir(t), 'b');
  const denied = await cli(['--addr', d.daemon.address, '--token', token, 'backup', '--file', out]);
  t.equal(denied.code, 1);
  t.match(denied.stderr, /PERMISSION_DENIED: .*back up the database/);
  t.notOk(existsSync(out) || existsSync(`${out}.partial`), 'nothing written');

  const pg = await startTestDaemon(t, { databaseUrl: await freshSchema(t) });
  const refused = await cli(['--addr', pg.daemon.address, '--token', pg.adminToken, 'backup', '--file', out]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /FAILED_PRECONDITION \(BACKUP_NOT_SUPPORTED\): .*pg_dump/);
});

t.test('a slow client that cancels a backed-up backup stream ends the generator (its finally removes the temp file)', async (t) => {
  const d = await startTestDaemon(t);
  for (let i = 0; i < 12; i++) await d.call('CreateSecret', createRequest(`big-${i}`, { V: randomBytes(450_000).toString('base64') }));
  // Observe (not fake) the server's writes: the first refused one means the stream is backed up.
  const proto = ServerWritableStreamImpl.prototype as { write: (...args: unknown[]) => boolean };
  const write = proto.write;
  let backedUp!: () => void;
  const full = new Promise<void>((r) => (backedUp = r));
  proto.write = function (this: unknown, ...args: unknown[]) {
    const ok = write.apply(this, args);
    if (!ok) backedUp();
    return ok;
  };
  t.teardown(() => void (proto.write = write));
  const client = new (loadServices().BackupService)(d.daemon.address, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${d.adminToken}`);
  const call = (client as any).Backup({}, metadata) as grpc.ClientReadableStream<unknown>;
  call.on('error', () => {});
  call.once('data', () => call.pause()); // a client that stops reading
  await full;
  const temp = () => readdirSync(d.dataDir).filter((f) => f.startsWith('.backup-'));
  t.equal(temp().length, 1, 'the backup is in progress');
  call.cancel();
  await until('the generator ends and removes its temp file', () => temp().length === 0);
  t.pass('ended');
});

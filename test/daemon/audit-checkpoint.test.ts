/**
 * Signed checkpoints of the audit chain's head (issue 11, item 8): written on demand and
 * periodically, logged and published on NATS without values; `audit verify --head SEQ:HASH` fails
 * once entries up to a known head are removed, which the chain alone cannot show.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { connect, type Msg } from 'nats';
import { checkpointVerifies, type AuditCheckpoint } from '../../daemon/src/security/audit-checkpoint.js';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { startNats } from '../helpers/nats.js';
import { cliBin } from '../helpers/spawn.js';
import { until } from '../helpers/wait.js';

const canary = 'canary-checkpoint-5b1d';

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliBin, ...args], { env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => resolve({ code: code ?? -1, out }));
  });
}

t.test('checkpoints: signed, logged, on NATS; verify --head catches entries removed from the end', async (t) => {
  const nats = await startNats(t);
  const received: AuditCheckpoint[] = [];
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const raw: string[] = [];
  nc.subscribe('lockbox.v1.audit.checkpoints', { callback: (_e: unknown, m: Msg) => (raw.push(m.string()), received.push(m.json<AuditCheckpoint>())) });
  await nc.flush();
  const d = await startTestDaemon(t, { natsUrl: nats.url, auditCheckpointIntervalMs: 100 });
  t.teardown(() => d.stop());

  for (let i = 0; i < 4; i++) await d.call('CreateSecret', createRequest(`s${i}`, { V: `${canary}-${i}` }));
  await d.call('GetSecret', { name: 's0', include_values: true });
  const head: AuditCheckpoint = await d.rpc('AuditService', 'AuditHead', {});
  t.ok(head.seq >= 5, `the head is entry ${head.seq}`);
  t.match(head.hash, /^[0-9a-f]{64}$/);
  t.ok(checkpointVerifies({ ...head, seq: Number(head.seq) }, head.public_key), 'its signature verifies with the public key it carries');
  t.notOk(checkpointVerifies({ ...head, seq: Number(head.seq) - 1 }, head.public_key), 'a checkpoint with another seq does not');
  t.notOk(checkpointVerifies({ ...head, seq: Number(head.seq), hash: '0'.repeat(64) }, head.public_key), 'nor one with another hash');
  t.ok(d.logs.some((l) => l.includes('"audit checkpoint"') && l.includes(`"head":"${head.seq}:${head.hash}"`)), 'the checkpoint is logged');

  // Periodic ones follow the head as it moves, and are published.
  await d.call('CreateSecret', createRequest('later', { V: `${canary}-later` }));
  await until('a periodic checkpoint past the head', () => received.some((c) => c.seq > Number(head.seq)));
  const periodic = received.find((c) => c.seq > Number(head.seq))!;
  t.ok(checkpointVerifies(periodic, head.public_key), 'the published checkpoint verifies with the same key');
  t.notOk(raw.some((m) => m.includes(canary)), 'no value on NATS');
  t.notOk(d.logs.some((l) => l.includes(canary)), 'no value in the log');

  const known = `${periodic.seq}:${periodic.hash}`;
  t.match(await d.rpc('AuditService', 'VerifyAudit', { head: known }), { ok: true });
  await t.rejects(d.rpc('AuditService', 'VerifyAudit', { head: 'lots' }), { code: status.INVALID_ARGUMENT, details: /head: must be SEQ:HASH/ });

  // Someone with write access to the database removes the newest entries.
  const db = new Database(join(d.dataDir, 'lockbox.db'));
  db.prepare('DELETE FROM audit WHERE seq >= ?').run(Number(head.seq));
  db.close();
  t.match(await d.rpc('AuditService', 'VerifyAudit', {}), { ok: true }, 'the chain alone still verifies: the hole this closes');
  const broken = await d.rpc('AuditService', 'VerifyAudit', { head: known });
  t.equal(broken.ok, false);
  t.equal(Number(broken.first_broken_seq), periodic.seq);
  t.match(broken.problem, `entry ${periodic.seq} of the known head is gone: the log ends at entry ${Number(head.seq) - 1}`);

  // The CLI: `audit head` prints SEQ:HASH first; `audit verify --head` exits 1.
  const env = { LOCKBOX_ADDR: d.daemon.address, LOCKBOX_TOKEN: d.adminToken };
  const cliHead = await runCli(['audit', 'head'], env);
  t.equal(cliHead.code, 0, cliHead.out);
  t.match(cliHead.out.split('\n')[0], /^\d+:[0-9a-f]{64}$/);
  const cliVerify = await runCli(['audit', 'verify', '--head', known], env);
  t.equal(cliVerify.code, 1, 'verify --head exits 1');
  t.match(cliVerify.out, /is gone/);
  t.equal((await runCli(['audit', 'verify', '--head', cliHead.out.split('\n')[0]], env)).code, 0, 'a head signed after the removal verifies');
});

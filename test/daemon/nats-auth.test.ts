/**
 * lockboxd on a NATS that requires credentials (--nats-user/--nats-password, --nats-token,
 * --nats-creds, --nats-ca; shared/src/nats-options.ts, as the agent's): the publisher and the
 * replica-notice subscriber both log in, a comma list of servers is tried in turn, a wrong
 * password leaves lockboxd serving with the notices in the outbox and the password in no log
 * line, and a bad combination stops the start with one line naming the setting.
 */
import t from 'tap';
import { connect } from 'nats';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configFromOptions, defaults, parseDaemonConfig } from '../../daemon/src/config.js';
import { createRequest, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { startNats } from '../helpers/nats.js';
import { until } from '../helpers/wait.js';

const PASSWORD = 'nats-pass-CANARY-41c9';

/** A subscriber logged in as `auth`, keeping the subjects it receives. */
async function subscribe(t: { teardown(fn: () => unknown): void }, url: string, auth: { user?: string; pass?: string; token?: string }) {
  const nc = await connect({ servers: url, ...auth });
  t.teardown(() => nc.close());
  const subjects: string[] = [];
  nc.subscribe('lockbox.v1.changes.>', { callback: (_e, m) => subjects.push(m.subject) });
  await nc.flush();
  return subjects;
}

t.test('with a user and password both NATS connections log in and notices flow', async (t) => {
  const nats = await startNats(t, { user: 'lockboxd', password: PASSWORD });
  const subjects = await subscribe(t, nats.url, { user: 'lockboxd', pass: PASSWORD });
  // A dead server first: the client moves on to the next in the list.
  const d = await startTestDaemon(t, { natsUrl: `nats://127.0.0.1:1,${nats.url}`, nats: { user: 'lockboxd', password: PASSWORD } });
  await until('publisher connected', () => d.daemon.publisher.isConnected);
  await until('replica notices subscribed', () => d.logs.some((l) => l.includes("following other replicas' changes")));
  await d.call('CreateSecret', createRequest('authed', { A: '1' }));
  await until('the notice arrives', () => subjects.length === 1);
  t.match(subjects[0], 'authed');
  t.notOk(d.logs.some((l) => l.includes(PASSWORD)), 'the password is in no log line');
});

t.test('with a token', async (t) => {
  const nats = await startNats(t, { token: PASSWORD });
  const subjects = await subscribe(t, nats.url, { token: PASSWORD });
  const d = await startTestDaemon(t, { natsUrl: nats.url, nats: { token: PASSWORD } });
  await until('publisher connected', () => d.daemon.publisher.isConnected);
  await d.call('CreateSecret', createRequest('tokened', { A: '1' }));
  await until('the notice arrives', () => subjects.length === 1);
  t.notOk(d.logs.some((l) => l.includes(PASSWORD)), 'the token is in no log line');
});

t.test('a wrong password: lockboxd serves, notices wait, the password is in no log line', async (t) => {
  const nats = await startNats(t, { user: 'lockboxd', password: PASSWORD });
  const d = await startTestDaemon(t, { natsUrl: nats.url, nats: { user: 'lockboxd', password: `${PASSWORD}-wrong` } });
  await until('the outage is logged', () => d.logs.some((l) => l.includes('NATS is not reachable')));
  await d.call('CreateSecret', createRequest('waiting', { A: '1' }));
  t.equal(d.daemon.publisher.isConnected, false);
  t.equal((await d.daemon.store.pendingNotices(10)).length, 1, 'the notice waits in the outbox');
  t.notOk(d.logs.some((l) => l.includes(PASSWORD)), 'the password is in no log line');
});

t.test('settings: the flags exist, and a bad combination is one line naming it', async (t) => {
  const base = { dataDir: tempDir(t), grpcAddr: '127.0.0.1:0', natsUrl: 'nats://a:4222,nats://b:4222', maxVersions: '10', logLevel: 'info', drainTimeout: '1s', idempotencyTtl: defaults.idempotencyTtl };
  const dir = tempDir(t);
  const creds = join(dir, 'lockboxd.creds');
  writeFileSync(creds, 'not read until connecting');
  const ok = configFromOptions({ ...base, natsUser: 'u', natsPassword: 'p', natsCa: creds });
  t.same(ok.nats, { token: undefined, user: 'u', password: 'p', credsFile: undefined, caFile: creds });
  t.equal(ok.natsUrl, 'nats://a:4222,nats://b:4222', 'a comma list of servers');
  t.throws(() => configFromOptions({ ...base, natsUrl: 'nats://a:4222,http://b' }), /--nats-url .*must be a nats:\/\/ URL/);
  t.throws(() => configFromOptions({ ...base, natsUser: 'u' }), /--nats-user and --nats-password must be given together/);
  t.throws(() => configFromOptions({ ...base, natsToken: 't', natsCreds: creds }), /give one of --nats-token, --nats-user\/--nats-password or --nats-creds/);
  t.throws(() => configFromOptions({ ...base, natsCreds: join(dir, 'missing.creds') }), /--nats-creds: cannot read .*missing\.creds: ENOENT/);
  t.throws(() => configFromOptions({ ...base, natsCa: join(dir, 'missing.pem') }), /--nats-ca: cannot read .*missing\.pem: ENOENT/);
});

t.test('settings: a NATS token or password on the command line is refused (it shows in ps); the environment is taken', async (t) => {
  const dataDir = tempDir(t);
  t.throws(() => parseDaemonConfig(['--data-dir', dataDir, '--nats-token', 'tok-CANARY']), /^--nats-token: a credential on the command line is visible in ps; set LOCKBOX_NATS_TOKEN in the environment \(or use --nats-creds FILE\) instead$/);
  t.throws(() => parseDaemonConfig(['--data-dir', dataDir, '--nats-user', 'u', '--nats-password', PASSWORD]), /^--nats-password: .*set LOCKBOX_NATS_PASSWORD/);
  const saved = process.env.LOCKBOX_NATS_PASSWORD;
  process.env.LOCKBOX_NATS_PASSWORD = PASSWORD;
  t.teardown(() => (saved === undefined ? delete process.env.LOCKBOX_NATS_PASSWORD : (process.env.LOCKBOX_NATS_PASSWORD = saved)));
  t.match(parseDaemonConfig(['--data-dir', dataDir, '--nats-user', 'u']).nats, { user: 'u', password: PASSWORD });
});

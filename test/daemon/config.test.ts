import t from 'tap';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parseDaemonConfig } from '../../daemon/src/config.js';
import { SettingError, parseDuration, parseHostPort } from '../../shared/src/settings.js';
import { loadServices } from '../../shared/src/proto.js';
import { LockboxClient } from '../../shared/src/client.js';
import { Agent } from '../../agent/src/agent.js';
import { realpathSync } from 'node:fs';
import { makeCertificates } from '../helpers/tls.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { spawnDaemon } from '../helpers/spawn.js';

t.test('settings: flags, then LOCKBOX_* env, then defaults', async (t) => {
  const saved = { ...process.env };
  t.teardown(() => {
    process.env = saved;
  });
  for (const k of Object.keys(process.env)) if (k.startsWith('LOCKBOX_')) delete process.env[k];
  const base = parseDaemonConfig([]);
  t.equal(base.dataDir, './.lockbox');
  t.equal(base.grpcAddr, '127.0.0.1:7700');
  t.equal(base.natsUrl, 'nats://127.0.0.1:4222');
  t.equal(base.maxVersions, 10);
  t.equal(base.idempotencyTtlMs, 24 * 3600 * 1000);
  t.equal(base.masterKeyFile, undefined);
  t.equal(base.httpAddr, '127.0.0.1:7701', 'the REST gateway is on by default, on loopback');
  t.equal(base.httpBodyLimit, 8 * 1024 * 1024);
  t.equal(parseDaemonConfig(['--http-addr', 'none']).httpAddr, '', '"none" turns the gateway off');
  t.equal(parseDaemonConfig(['--http-body-limit', '512KiB']).httpBodyLimit, 512 * 1024);
  t.equal(parseDaemonConfig(['--http-body-limit', '2048']).httpBodyLimit, 2048);
  process.env.LOCKBOX_MAX_VERSIONS = '3';
  process.env.LOCKBOX_NATS_URL = 'none';
  t.equal(parseDaemonConfig([]).maxVersions, 3, 'env applies');
  t.equal(parseDaemonConfig([]).natsUrl, '', '"none" disables NATS');
  t.equal(parseDaemonConfig(['--max-versions', '5']).maxVersions, 5, 'a flag beats env');
  delete process.env.LOCKBOX_MAX_VERSIONS;

  const bad: Array<[string[], RegExp]> = [
    [['--max-versions', '0'], /--max-versions \(LOCKBOX_MAX_VERSIONS\): "0" must be a whole number from 1 to 1000/],
    [['--grpc-addr', 'nope'], /--grpc-addr \(LOCKBOX_GRPC_ADDR\): "nope" must be host:port/],
    [['--grpc-addr', '1.2.3.4:70000'], /must be host:port/],
    [['--nats-url', 'http://x'], /--nats-url .* must be a nats:\/\/ URL/],
    [['--nats-advertise-url', 'nats-server:4222'], /--nats-advertise-url .*"nats-server:4222" must be a nats:\/\/ URL/],
    [['--log-level', 'loud'], /--log-level/],
    [['--tls-cert', 'a.pem'], /must be given together/],
    [['--tls-client-ca', 'ca.pem'], /needs --tls-cert/],
    [['--drain-timeout', 'soon'], /--drain-timeout .* is not a duration/],
    [['--data-dir', ''], /--data-dir/],
    [['--max-tenant-wide-secrets', '-1'], /--max-tenant-wide-secrets .* must be a whole number from 0/],
    [['--max-resource-groups', 'many'], /--max-resource-groups/],
    [['--http-addr', 'localhost'], /--http-addr \(LOCKBOX_HTTP_ADDR\): "localhost" must be host:port/],
    [['--http-body-limit', 'big'], /--http-body-limit \(LOCKBOX_HTTP_BODY_LIMIT\): "big" is not a size/],
    [['--http-body-limit', '10'], /--http-body-limit .*must be from 1KiB to 1GiB/],
  ];
  bad.push([['--root-key-file', 'a.key', '--master-key-file', 'b.key'], /--root-key-file and --master-key-file .* name different files; give one/]);
  bad.push([['--keyring-refresh-interval', 'often'], /--keyring-refresh-interval \(LOCKBOX_KEYRING_REFRESH_INTERVAL\): "often" is not a duration/]);
  for (const [args, message] of bad) t.throws(() => parseDaemonConfig(args), { name: 'SettingError', message }, args.join(' '));
  // The root key: --root-key-file, its old name --master-key-file, or LOCKBOX_ROOT_KEY (environment only).
  t.equal(parseDaemonConfig(['--root-key-file', 'r.key']).masterKeyFile, 'r.key');
  t.equal(parseDaemonConfig(['--master-key-file', 'm.key']).masterKeyFile, 'm.key', 'the old name still works');
  t.equal(parseDaemonConfig(['--root-key-file', 'same.key', '--master-key-file', 'same.key']).masterKeyFile, 'same.key');
  t.equal(base.rootKey, undefined);
  t.equal(base.keyringRefreshMs, 10_000);
  t.equal(parseDaemonConfig(['--keyring-refresh-interval', '0']).keyringRefreshMs, 0, '0 turns the periodic check off');
  process.env.LOCKBOX_ROOT_KEY = 'a'.repeat(64);
  process.env.LOCKBOX_ROOT_KEY_FILE = 'env.key';
  t.equal(parseDaemonConfig([]).rootKey, 'a'.repeat(64));
  t.equal(parseDaemonConfig([]).masterKeyFile, 'env.key');
  delete process.env.LOCKBOX_ROOT_KEY;
  delete process.env.LOCKBOX_ROOT_KEY_FILE;
  t.throws(() => parseDaemonConfig(['--audit-reads', 'maybe']), { code: 'commander.invalidArgument' });
  t.equal(parseDaemonConfig(['--audit-reads', 'async']).auditReads, 'async');
  t.same(parseDaemonConfig(['--max-tenant-wide-secrets', '2']).quotas, { maxTenantWideSecrets: 2, maxResourceGroups: 50 });
  t.equal(parseDuration('1.5s', 'x'), 1500);
  t.equal(parseDuration('5m', 'x'), 300_000);
  t.equal(parseDuration('250', 'x'), 250_000, 'a bare number is seconds, in every program');
  t.equal(parseDuration('500ms', 'x'), 500);
  t.equal(parseDuration('2m', 'x'), 120_000);
  t.equal(parseDuration('1h', 'x'), 3_600_000);
  t.throws(() => parseDuration('1d', '--x'), { message: '--x: "1d" is not a duration (e.g. 500ms, 30s, 2m, 1h; a bare number is seconds)' });
  t.throws(() => parseDuration('-1s', '--x'), { name: 'SettingError' });
  t.equal(parseDaemonConfig(['--drain-timeout', '3']).drainTimeoutMs, 3000, 'lockboxd reads a bare number as seconds');
  t.same(parseHostPort('[::1]:7700', 'x'), { host: '::1', port: 7700 });
  t.type(new SettingError('x'), Error);
});

t.test('the lockboxd binary: --help, a bad setting is one line and exit 2, a bad key file stops it', async (t) => {
  const { daemonBin } = await import('../helpers/spawn.js');
  const help = execFileSync(process.execPath, [daemonBin, '--help'], { encoding: 'utf8' });
  for (const flag of ['--data-dir', '--grpc-addr', '--nats-url', '--master-key-file', '--tls-cert', '--tls-client-ca', '--max-versions', 'LOCKBOX_DATA_DIR'])
    t.match(help, flag);
  t.match(help, '\nDurations: 500ms, 30s, 2m, 1h (fractions allowed: 1.5s); a bare number is seconds.\n', 'the duration syntax, as every program states it');
  try {
    execFileSync(process.execPath, [daemonBin, '--max-versions', 'lots'], { encoding: 'utf8', stdio: 'pipe' });
    t.fail('should exit');
  } catch (error) {
    const e = error as { status: number; stderr: string };
    t.equal(e.status, 2);
    t.equal(e.stderr, 'lockboxd: --max-versions (LOCKBOX_MAX_VERSIONS): "lots" must be a whole number from 1 to 1000\n');
  }
  const dir = tempDir(t);
  await t.rejects(spawnDaemon(['--data-dir', dir, '--grpc-addr', '127.0.0.1:0', '--nats-url', 'none', '--master-key-file', join(dir, 'absent.key')]), /does not exist/);
});

t.test('listening beyond loopback without TLS warns', async (t) => {
  const d = await startTestDaemon(t, { grpcAddr: '0.0.0.0:0', httpAddr: '0.0.0.0:0' });
  t.ok(d.logs.some((l) => l.includes('listening beyond loopback without TLS')));
  t.ok(d.logs.some((l) => l.includes('REST gateway listening beyond loopback without TLS')));
});

t.test('TLS and mTLS', async (t) => {
  const dir = tempDir(t);
  makeCertificates(dir); // ca.pem, server.pem and .key, client.pem and .key
  const p = (f: string) => join(dir, f);
  const d = await startTestDaemon(t, { tls: { cert: p('server.pem'), key: p('server.key'), clientCa: p('ca.pem') } });
  const services = loadServices();
  const { readFileSync } = await import('node:fs');
  const call = (credentials: grpc.ChannelCredentials) => {
    const c = new services.SecretsService(d.daemon.address, credentials);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${d.adminToken}`);
    return new Promise<any>((resolve, reject) =>
      (c as any).ListSecrets({}, md, { deadline: Date.now() + 5000 }, (e: Error | null, r: unknown) => {
        c.close();
        return e ? reject(e) : resolve(r);
      }),
    );
  };
  t.ok(await call(grpc.credentials.createSsl(readFileSync(p('ca.pem')), readFileSync(p('client.key')), readFileSync(p('client.pem')))), 'a client certificate from the CA is let in');
  await t.rejects(call(grpc.credentials.createSsl(readFileSync(p('ca.pem')))), { code: grpc.status.UNAVAILABLE }, 'no client certificate: refused');
  await t.rejects(call(grpc.credentials.createInsecure()), { code: grpc.status.UNAVAILABLE }, 'plaintext: refused');
  t.notOk(d.logs.some((l) => l.includes('without TLS')));

  // The REST gateway serves the same certificate and asks for the same client certificates.
  t.match(d.daemon.httpUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  const { request } = await import('node:https');
  const get = (tls: { cert?: Buffer; key?: Buffer }) =>
    new Promise<number>((resolve, reject) => {
      const req = request(`${d.daemon.httpUrl}/v1/admin/secrets`, { ca: readFileSync(p('ca.pem')), ...tls, headers: { 'x-api-key': d.adminToken }, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
  t.equal(await get({ cert: readFileSync(p('client.pem')), key: readFileSync(p('client.key')) }), 200, 'REST over mTLS');
  await t.rejects(get({}), 'REST without a client certificate: refused');

  // lockbox-agent over mTLS: its session opens with the same certificates.
  const tls = { tlsCa: p('ca.pem'), tlsCert: p('client.pem'), tlsKey: p('client.key') };
  const admin = new LockboxClient({ addr: d.daemon.address, token: d.adminToken, ...tls });
  t.teardown(() => admin.close());
  await admin.call('SecretsService', 'CreateSecret', { secret: { name: 'openai', template: 'openai', data: { OPENAI_API_KEY: Buffer.from('sk-tls') }, mount: { path: 'demo' } } });
  await admin.call('DeploymentsService', 'CreateDeployment', { deployment: { name: 'app', secrets: ['openai'] } });
  const { token } = await admin.call('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });
  const home = realpathSync(tempDir(t));
  const quiet = { info() {}, warn() {}, error() {} };
  const agent = new Agent({ client: { addr: d.daemon.address, token, ...tls }, bentomlHome: home, natsUrl: 'none', resyncIntervalMs: 60_000, modes: { fileMode: 0o400, dirMode: 0o500 }, log: quiet });
  await agent.syncOnce();
  await agent.stop();
  t.equal(readFileSync(join(home, 'demo/OPENAI_API_KEY'), 'utf8'), 'sk-tls', 'the agent fetched over mTLS');
  const plain = new Agent({ client: { addr: d.daemon.address, token, timeoutMs: 2000 }, bentomlHome: home, natsUrl: 'none', resyncIntervalMs: 60_000, modes: { fileMode: 0o400, dirMode: 0o500 }, log: quiet });
  await t.rejects(plain.syncOnce(), { code: grpc.status.UNAVAILABLE }, 'an agent without TLS is refused');
  await plain.stop();

  await t.rejects(startTestDaemon(t, { tls: { cert: p('missing.pem'), key: p('server.key') } }), /--tls-cert: cannot read .*ENOENT/);
});

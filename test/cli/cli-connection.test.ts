/**
 * How the CLI finds its daemon and proves who it is: --token-file (and LOCKBOX_TOKEN_FILE), the
 * ./.lockbox/admin.token default, and --tls-ca/--tls-cert/--tls-key against a daemon that asks
 * for client certificates. Run through runCli, as the installed command runs it.
 */
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../cli/src/cli.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { makeCertificates } from '../helpers/tls.js';

async function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  let stdout = '';
  let stderr = '';
  const saved = { ...process.env };
  Object.assign(process.env, opts.env ?? {});
  try {
    const code = await runCli(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), readStdin: () => Buffer.alloc(0), cwd: opts.cwd ?? process.cwd() });
    return { code, stdout, stderr };
  } finally {
    for (const key of Object.keys(opts.env ?? {})) if (saved[key] === undefined) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

t.test('--token-file, LOCKBOX_TOKEN_FILE and the ./.lockbox/admin.token default', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', { secret: { name: 'listed', data: { K: Buffer.from('v') } } });
  const dir = tempDir(t);
  const tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, `${d.adminToken}\n`, { mode: 0o600 });

  let r = await cli(['--addr', d.daemon.address, '--token-file', tokenFile, 'secret', 'list']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /listed/, 'the token from the file is used (its trailing newline dropped)');

  r = await cli(['--addr', d.daemon.address, 'secret', 'list'], { env: { LOCKBOX_TOKEN_FILE: tokenFile } });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /listed/, 'LOCKBOX_TOKEN_FILE');

  r = await cli(['--addr', d.daemon.address, '--token-file', 'admin.token', 'secret', 'list'], { cwd: dir });
  t.equal(r.code, 0, `a relative --token-file is read from the working directory: ${r.stderr}`);

  const project = tempDir(t);
  mkdirSync(join(project, '.lockbox'));
  writeFileSync(join(project, '.lockbox', 'admin.token'), d.adminToken);
  r = await cli(['--addr', d.daemon.address, 'secret', 'list'], { cwd: project });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /listed/, './.lockbox/admin.token where the command runs');

  r = await cli(['--addr', d.daemon.address, '--token-file', join(dir, 'absent.token'), 'secret', 'list']);
  t.equal(r.code, 2, 'a token file that is not there is a usage error');
  t.match(r.stderr, /absent\.token/, 'naming the file');
  t.match(r.stderr, /ENOENT/);

  const empty = join(dir, 'empty.token');
  writeFileSync(empty, '\n');
  r = await cli(['--addr', d.daemon.address, '--token-file', empty, 'secret', 'list']);
  t.equal(r.code, 2, 'an empty token file is a usage error');
  t.match(r.stderr, /empty\.token.*empty/);

  const wrong = join(dir, 'wrong.token');
  writeFileSync(wrong, 'lbx_0000000000000000_' + 'A'.repeat(43));
  r = await cli(['--addr', d.daemon.address, '--token-file', wrong, 'secret', 'list']);
  t.equal(r.code, 1);
  t.match(r.stderr, /UNAUTHENTICATED/, 'an unknown token is refused by the daemon');
  t.notMatch(r.stderr, 'A'.repeat(43), 'the token is not echoed');
});

t.test('--tls-ca, --tls-cert and --tls-key against a daemon that asks for client certificates', async (t) => {
  const dir = tempDir(t);
  const certs = makeCertificates(dir);
  const d = await startTestDaemon(t, { tls: { cert: certs.serverCert, key: certs.serverKey, clientCa: certs.ca } });
  await d.call('CreateSecret', { secret: { name: 'over-mtls', data: { K: Buffer.from('v') } } }).catch(() => undefined);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];

  let r = await cli([...g, '--tls-ca', certs.ca, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey, 'secret', 'create', 'over-mtls', 'K=v']);
  t.equal(r.code, 0, r.stderr);
  r = await cli([...g, '--tls-ca', certs.ca, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey, 'secret', 'list']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /over-mtls/, 'a client certificate from the CA is let in');

  r = await cli([...g, 'secret', 'list'], { env: { LOCKBOX_TLS_CA: certs.ca, LOCKBOX_TLS_CERT: certs.clientCert, LOCKBOX_TLS_KEY: certs.clientKey } });
  t.equal(r.code, 0, `the same from LOCKBOX_TLS_*: ${r.stderr}`);

  r = await cli([...g, '--tls-ca', certs.ca, 'secret', 'list', '--timeout', '5']);
  t.equal(r.code, 1, 'without a client certificate the daemon refuses the connection');
  t.match(r.stderr, /UNAVAILABLE/);

  r = await cli([...g, 'secret', 'list', '--timeout', '5']);
  t.equal(r.code, 1, 'plaintext against a TLS daemon fails');

  r = await cli([...g, '--tls-ca', join(dir, 'absent.pem'), 'secret', 'list']);
  t.equal(r.code, 2, 'a CA file that is not there is a usage error');
  t.match(r.stderr, /absent\.pem/);
});

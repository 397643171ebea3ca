/**
 * What an operator sees of each program: `--version` from package.json, and JSON logs on stdout
 * with level names and ISO times, the ready line included.
 */
import tap from 'tap';
const t = tap;
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequest, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { agentBin, agentEnv, agentFlags, cliBin, daemonBin, repoRoot, spawnDaemon } from '../helpers/spawn.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** Every line parses as JSON with a level name, an ISO time and the program's service name. */
function checkLogLines(t: Pick<typeof tap, 'ok' | 'match'>, text: string, service: string): Array<Record<string, unknown>> {
  const lines = text.split('\n').filter(Boolean);
  t.ok(lines.length > 0, `${service} logged`);
  return lines.map((line) => {
    const entry = JSON.parse(line) as Record<string, unknown>;
    t.match(entry, { level: /^(trace|debug|info|warn|error|fatal)$/, service }, line);
    t.ok(typeof entry.time === 'string' && new Date(entry.time as string).toISOString() === entry.time, `ISO time: ${entry.time}`);
    return entry;
  });
}

t.test('--version prints the package version on all three programs', async (t) => {
  for (const [name, args] of [
    ['lockboxd', [daemonBin]],
    ['lockbox', [cliBin]],
    ['lockbox-agent', [...agentFlags, agentBin]],
  ] as const) {
    for (const flag of ['--version', '-V']) {
      const r = spawnSync(process.execPath, [...args, flag], { encoding: 'utf8', env: agentEnv() });
      t.equal(r.status, 0, `${name} ${flag} exits 0: ${r.stderr}`);
      t.equal(r.stdout, `${name} ${version}\n`);
    }
    t.match(spawnSync(process.execPath, [...args, '--help'], { encoding: 'utf8', env: agentEnv() }).stdout, /-V\b.*--version|--version \(-V\)/, `${name} --help names it`);
  }
});

t.test('lockboxd logs JSON lines on stdout, the ready line included, whatever --log-level', async (t) => {
  const daemon = await spawnDaemon(['--data-dir', tempDir(t), '--grpc-addr', '127.0.0.1:0', '--nats-url', 'none', '--log-level', 'warn']);
  t.teardown(() => daemon.child.kill('SIGKILL'));
  daemon.child.kill('SIGTERM');
  t.equal(await daemon.exited, 0);
  const entries = checkLogLines(t, daemon.output(), 'lockboxd');
  const ready = entries.find((e) => e.msg === 'lockboxd ready');
  t.match(ready, { level: 'info', addr: /^127\.0\.0\.1:\d+$/, http: /^http:\/\/127\.0\.0\.1:\d+$/ }, 'the ready line, at info although --log-level is warn');
  t.ok(entries.every((e) => e.msg === 'lockboxd ready' || e.level !== 'info'), 'other info lines follow --log-level');
});

t.test('lockbox-agent logs JSON lines on stdout; errors stay one line on stderr', async (t) => {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', createRequest('api', { API_KEY: 'k1' }, { mount: { path: 'files' } }));
  await d.rpc('DeploymentsService', 'CreateDeployment', { deployment: { name: 'app', secrets: ['api'] } });
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });
  const run = async (addr: string) => {
    const child = spawn(process.execPath, [...agentFlags, agentBin, 'once', '--addr', addr, '--token', token, '--bentoml-home', tempDir(t), '--timeout', '2s', '--nats-url', 'none'], { env: agentEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const code = await new Promise((resolve) => child.on('close', resolve));
    return { code, stdout, stderr };
  };
  const ok = await run(d.daemon.address);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(ok.stderr, '', 'nothing on stderr');
  checkLogLines(t, ok.stdout, 'lockbox-agent');
  const down = await run('127.0.0.1:1');
  t.equal(down.code, 1);
  t.match(down.stderr, /^lockbox-agent: could not get the secrets/, 'the one-line error on stderr');
});

import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { render } from '../../agent/src/render.js';
import { watchSecrets, type SecretsSnapshot } from '../../agent/src/index.js';
import { AtomicWriter } from '../../agent/src/atomic-writer.js';
import { createRequest, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { freePort } from '../helpers/free-port.js';
import { startNats } from '../helpers/nats.js';
import { agentBin, agentEnv, agentFlags, repoRoot } from '../helpers/spawn.js';
import { until as waitUntil } from '../helpers/wait.js';

const scope = { tenant: 'default', resource_group: '' };

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [...agentFlags, agentBin, ...args], { env: agentEnv(env) });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, done, out: () => stdout, err: () => stderr };
}

/** This file's waits end hung tests after 10 s; the loop is test/helpers/wait.ts's. */
const until = (what: string, condition: () => boolean, ms = 10_000) => waitUntil(what, condition, ms);

/** The lines a test child wrote to its log so far. */
function logLines(log: string): string[] {
  try {
    return readFileSync(log, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

async function deployment(t: { teardown(fn: () => unknown): void }) {
  const d = await startTestDaemon(t);
  await d.call('CreateSecret', { scope, ...createRequest('api', { API_KEY: 'k1', MODE: 'a b' }, { mount: { kind: 'env', path: 'env' } }) });
  await d.call('CreateSecret', { scope, ...createRequest('file', { TOKEN: 't1' }, { mount: { path: 'files' } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['api', 'file'] } });
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });
  const home = realpathSync(tempDir(t));
  return { d, token, home, env: { LOCKBOX_ADDR: d.daemon.address, LOCKBOX_TOKEN: token, BENTOML_HOME: home, LOCKBOX_NATS_URL: 'none', LOCKBOX_RESYNC_INTERVAL: '200ms' } };
}

t.test('once writes and exits 0; an unreachable daemon is one line and exit 1', async (t) => {
  const { home, env } = await deployment(t);
  const once = run(['once'], env);
  t.equal(await once.done, 0, once.err());
  t.equal(readFileSync(join(home, 'files/TOKEN'), 'utf8'), 't1');
  t.equal(readFileSync(join(home, 'env/api.env'), 'utf8'), "API_KEY='k1'\nMODE='a b'\n");

  const down = run(['once', '--timeout', '1s'], { ...env, LOCKBOX_ADDR: '127.0.0.1:1' });
  t.equal(await down.done, 1);
  t.match(down.err(), /^lockbox-agent: could not get the secrets from lockboxd within 1s: .+\n$/);
  const bad = run(['once'], { ...env, LOCKBOX_TOKEN: 'lbx_0000000000000000_' + 'A'.repeat(43) });
  t.equal(await bad.done, 1);
  t.match(bad.err(), /invalid token/);
  const notDir = run(['once'], { ...env, BENTOML_HOME: join(home, 'files/TOKEN') });
  t.equal(await notDir.done, 2);
  t.match(notDir.err(), /^lockbox-agent: --bentoml-home: .*TOKEN is not a directory\n$/);
  const usage = run(['once', '--file-mode', '999'], env);
  t.equal(await usage.done, 2);
  t.match(usage.err(), /--file-mode: "999" must be an octal mode/);
  for (const [args, message] of [
    [['--addr', 'not an address'], /^lockbox-agent: --addr: "not an address" must be host:port/],
    [['--addr', '127.0.0.1:70000'], /--addr: .* must be host:port/],
    [['--resync-interval', '0s'], /--resync-interval: "0s" must be from 100ms to 24h/],
    [['--resync-interval', 'often'], /--resync-interval: "often" is not a duration/],
    [['--timeout', 'soon'], /--timeout: "soon" is not a duration/],
    [['--nats-url', 'http://127.0.0.1:4222'], /--nats-url: "http:\/\/127.0.0.1:4222" must be a nats:\/\/ URL, or "none"/],
    // Credentials on the command line would show in ps: env only (shared/src/nats-options.ts).
    [['--nats-token', 'tok-CANARY-7d1'], /^lockbox-agent: --nats-token: a credential on the command line is visible in ps; set LOCKBOX_NATS_TOKEN .*--nats-creds/],
    [['--nats-user', 'u', '--nats-password', 'pw-CANARY-7d1'], /^lockbox-agent: --nats-password: .*set LOCKBOX_NATS_PASSWORD/],
  ] as const) {
    const bad = run(['once', ...args], env);
    t.equal(await bad.done, 2, `${args.join(' ')}: a usage error`);
    t.match(bad.err(), message);
    t.notMatch(bad.err(), 'CANARY', 'the value is not repeated');
  }
  const fromEnv = run(['once'], { ...env, LOCKBOX_NATS_USER: 'u', LOCKBOX_NATS_PASSWORD: 'pw' });
  t.equal(await fromEnv.done, 0, `the password from the environment is taken: ${fromEnv.err()}`);
  const help = run(['--help']);
  t.equal(await help.done, 0);
  t.match(help.out(), /run .*\n.*once/s);
  t.match(help.out(), '\nDurations: 500ms, 30s, 2m, 1h (fractions allowed: 1.5s); a bare number is seconds.\n', 'the duration syntax, as every program states it');
});

t.test('run serves /healthz and /readyz', async (t) => {
  const { env } = await deployment(t);
  const port = await freePort();
  const second = run(['run', '--health-addr', `127.0.0.1:${port}`], env);
  t.teardown(() => second.child.kill('SIGKILL'));
  const get = (path: string) =>
    new Promise<number>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.end();
    });
  let ready = 0;
  for (let i = 0; i < 100 && ready !== 200; i++) {
    ready = await get('/readyz');
    await sleep(50);
  }
  t.equal(ready, 200, 'ready after the first sync');
  t.equal(await get('/healthz'), 200);
  t.equal(await get('/nope'), 404);
  const clash = run(['run', '--health-addr', `127.0.0.1:${port}`], env);
  t.equal(await clash.done, 1, 'a health port in use: exit 1');
  t.match(clash.err(), new RegExp(`^lockbox-agent: --health-addr: cannot listen on 127.0.0.1:${port}: EADDRINUSE\n$`));
  second.child.kill('SIGTERM');
  t.equal(await second.done, 0, 'SIGTERM stops cleanly');
});

t.test('the lockbox-agent command (one bundled file) gets changes pushed on its session; --nats-url advertised follows the daemon\'s NATS too', async (t) => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.equal(join(repoRoot, pkg.bin['lockbox-agent']), agentBin, 'the installed command is the bundle');
  const firstLine = (path: string) => readFileSync(path, 'utf8').split('\n', 1)[0];
  t.equal(firstLine(agentBin), firstLine(join(repoRoot, 'agent/src/main.ts')), "the bundle keeps main.ts's shebang and its node flags");
  const nats = await startNats(t);
  const d = await startTestDaemon(t, { natsUrl: nats.url });
  await d.call('CreateSecret', { scope, ...createRequest('file', { TOKEN: 't1' }, { mount: { path: 'files' } }) });
  await d.rpc('DeploymentsService', 'CreateDeployment', { scope, deployment: { name: 'app', secrets: ['file'] } });
  const { token } = await d.rpc('TokensService', 'CreateToken', { role: 'agent', deployment: 'app' });
  const home = realpathSync(tempDir(t));
  // No NATS URL and a resync a minute away: only the push on the session can bring the update in time.
  const agent = run(['run', '--resync-interval', '60s'], { LOCKBOX_ADDR: d.daemon.address, LOCKBOX_TOKEN: token, BENTOML_HOME: home });
  t.teardown(() => agent.child.kill('SIGKILL'));
  await until('first sync', () => existsSync(join(home, 'files/TOKEN')));
  t.equal(readFileSync(join(home, 'files/TOKEN'), 'utf8'), 't1');
  await d.call('UpdateSecret', { scope, name: 'file', set: { TOKEN: Buffer.from('t2') } });
  await until('the update written', () => readFileSync(join(home, 'files/TOKEN'), 'utf8') === 't2', 5000);
  t.notMatch(agent.out(), 'following change notices', 'no NATS unless asked for');
  agent.child.kill('SIGTERM');
  t.equal(await agent.done, 0, 'SIGTERM stops cleanly');

  const home2 = realpathSync(tempDir(t));
  const follower = run(['run', '--resync-interval', '60s', '--nats-url', 'advertised'], { LOCKBOX_ADDR: d.daemon.address, LOCKBOX_TOKEN: token, BENTOML_HOME: home2 });
  t.teardown(() => follower.child.kill('SIGKILL'));
  await until('following change notices', () => follower.out().includes('"following change notices"'));
  t.match(follower.out(), `"nats":"${nats.url}"`, 'the NATS the daemon advertises');
  follower.child.kill('SIGTERM');
  t.equal(await follower.done, 0);
});

t.test('exec: the env secrets reach the command; a change restarts it, or signals it', async (t) => {
  const { d, env, home } = await deployment(t);
  const dir = tempDir(t);
  const script = join(dir, 'child.js');
  const log = join(dir, 'log');
  writeFileSync(
    script,
    `const fs = require('fs');
     fs.appendFileSync(${JSON.stringify(log)}, 'start ' + process.env.API_KEY + ' ' + process.env.MODE + '\\n');
     process.on('SIGHUP', () => fs.appendFileSync(${JSON.stringify(log)}, 'hup\\n'));
     process.on('SIGTERM', () => { fs.appendFileSync(${JSON.stringify(log)}, 'term\\n'); process.exit(0); });
     setInterval(() => {}, 1000);`,
  );
  const lines = () => logLines(log);
  const restart = run(['exec', '--', process.execPath, script], env);
  t.teardown(() => restart.child.kill('SIGKILL'));
  await until('child started', () => lines().includes('start k1 a b'));
  await d.call('UpdateSecret', { scope, name: 'api', set: { API_KEY: Buffer.from('k2') } });
  await until('restarted with the new value', () => lines().includes('start k2 a b'));
  t.same(lines(), ['start k1 a b', 'term', 'start k2 a b'], 'graceful restart: SIGTERM, then a new child');
  t.equal(readFileSync(join(home, 'env/api.env'), 'utf8'), "API_KEY='k2'\nMODE='a b'\n", 'the files are kept current too');
  restart.child.kill('SIGTERM');
  t.equal(await restart.done, 0, "the agent exits with the child's code");

  writeFileSync(log, '');
  const signal = run(['exec', '--on-change', 'signal:SIGHUP', '--', process.execPath, script], env);
  t.teardown(() => signal.child.kill('SIGKILL'));
  await until('child started', () => lines().includes('start k2 a b'));
  await d.call('UpdateSecret', { scope, name: 'api', set: { API_KEY: Buffer.from('k3') } });
  await until('signalled', () => lines().includes('hup'));
  t.notOk(lines().includes('term'), 'not restarted');
  signal.child.kill('SIGTERM');
  await signal.done;

  const exit = run(['exec', '--', process.execPath, '-e', 'process.exit(7)'], env);
  t.equal(await exit.done, 7, "the child's exit code");
  const bad = run(['exec', '--on-change', 'explode', '--', 'true'], env);
  t.equal(await bad.done, 2);
  const missing = run(['exec', '--', join(dir, 'no-such-command')], env);
  t.equal(await missing.done, 127, 'a command that does not exist: 127, as in a shell');
  t.match(missing.err(), /lockbox-agent: cannot run ".*no-such-command": no such command\n/);
  t.notMatch(missing.err(), /at .*\.js:\d+/, 'one line, no stack');
  const notExecutable = run(['exec', '--', log], env);
  t.equal(await notExecutable.done, 126, 'a file that cannot be executed: 126');
});

t.test('exec: a child that ignores SIGTERM is killed after --grace; changes during a restart start one child; SIGTERM during a restart ends it', async (t) => {
  const { d, env } = await deployment(t);
  const dir = tempDir(t);
  const log = join(dir, 'log');
  // STOP_MS: how long the child takes to stop after SIGTERM ("never": it ignores SIGTERM).
  const script = join(dir, 'child.js');
  writeFileSync(
    script,
    `const fs = require('fs');
     fs.appendFileSync(${JSON.stringify(log)}, 'start ' + process.env.API_KEY + '\\n');
     process.on('SIGTERM', () => {
       fs.appendFileSync(${JSON.stringify(log)}, 'term\\n');
       if (process.env.STOP_MS !== 'never') setTimeout(() => process.exit(3), Number(process.env.STOP_MS));
     });
     setInterval(() => {}, 1000);`,
  );
  const lines = () => logLines(log);
  const set = (value: string) => d.call('UpdateSecret', { scope, name: 'api', set: { API_KEY: Buffer.from(value) } });

  const stubborn = run(['exec', '--grace', '300ms', '--', process.execPath, script], { ...env, STOP_MS: 'never' });
  t.teardown(() => stubborn.child.kill('SIGKILL'));
  await until('child started', () => lines().includes('start k1'));
  const changed = Date.now();
  await set('k2');
  await until('restarted', () => lines().includes('start k2'));
  t.ok(Date.now() - changed >= 300, `killed after the grace period (${Date.now() - changed} ms)`);
  t.same(lines(), ['start k1', 'term', 'start k2']);
  stubborn.child.kill('SIGTERM'); // forwarded; ignored; the grace period ends it
  t.equal(await stubborn.done, 128 + 9, 'the agent stops too, with the code of a SIGKILLed child');

  writeFileSync(log, '');
  const slow = run(['exec', '--', process.execPath, script], { ...env, STOP_MS: '1500' });
  t.teardown(() => slow.child.kill('SIGKILL'));
  await until('child started', () => lines().includes('start k2'));
  await set('k3');
  await until('asked to stop', () => lines().includes('term'));
  await set('k4'); // lands while the old child is still stopping
  await until('restarted', () => lines().some((l) => l.startsWith('start k') && l !== 'start k2'), 10_000);
  t.same(lines(), ['start k2', 'term', 'start k4'], 'one new child, with the latest value');

  // The next change is handled after anything k3 and k4 set off, so once its stop request is in
  // the log, a second restart for k4 would be there before it.
  await set('k5');
  await until('asked to stop for k5', () => lines().filter((l) => l === 'term').length === 2);
  t.same(lines(), ['start k2', 'term', 'start k4', 'term'], 'one restart for k3 and k4 together, then the stop for k5');
  writeFileSync(log, '');
  slow.child.kill('SIGTERM'); // the agent is told to stop while its child is stopping
  t.equal(await slow.done, 3, "the agent exits with the child's code");
  await sleep(300);
  t.notOk(lines().some((l) => l.startsWith('start')), `and starts no new child (${lines().join(', ')}: the SIGTERM forwarded too)`);
});

t.test('hostile secrets from a compromised daemon are left out, never written elsewhere', async (t) => {
  const base = { resourceGroup: '', uid: 'u', version: 1, type: 'opaque' };
  const rendered = render([
    { ...base, name: 'ok', mount: { kind: 'file', path: 'ok', subPaths: {}, format: '' }, data: { K: Buffer.from('v') } },
    { ...base, name: 'escape', mount: { kind: 'file', path: '../../etc', subPaths: {}, format: '' }, data: { passwd: Buffer.from('x') } },
    { ...base, name: 'abs', mount: { kind: 'file', path: '/etc', subPaths: {}, format: '' }, data: { K: Buffer.from('x') } },
    { ...base, name: 'key', mount: { kind: 'file', path: 'k', subPaths: {}, format: '' }, data: { '../x': Buffer.from('x') } },
    { ...base, name: 'sub', mount: { kind: 'file', path: 's', subPaths: { K: '../../..' }, format: '' }, data: { K: Buffer.from('x') } },
    { ...base, name: 'clash', mount: { kind: 'file', path: 'ok', subPaths: {}, format: '' }, data: { K: Buffer.from('y') } },
  ] as never);
  t.same([...rendered.dirs.keys()], ['ok']);
  t.equal(rendered.problems.length, 5);
  for (const name of ['escape', 'abs', 'key', 'sub', 'clash']) t.ok(rendered.problems.some((p) => p.includes(`"${name}"`)), name);
});

t.test('watchSecrets hands a Node app each new consistent set', async (t) => {
  const home = realpathSync(tempDir(t));
  const writer = new AtomicWriter(home, 'app', { fileMode: 0o400, dirMode: 0o500 });
  await writer.write(new Map([['A', Buffer.from('1')], ['B', Buffer.from('1')]]), 's=1\n');
  const seen: SecretsSnapshot[] = [];
  const w = watchSecrets(join(home, 'app'), (s) => seen.push(s));
  t.teardown(() => w.close());
  await w.ready;
  t.equal(seen.length, 1, 'the current set at start');
  t.equal(seen[0].files.get('A')!.toString(), '1');
  await writer.write(new Map([['A', Buffer.from('2')], ['B', Buffer.from('2')]]), 's=2\n');
  await until('the new set', () => seen.length === 2);
  t.equal(seen[1].files.get('B')!.toString(), '2');
  t.equal(seen[1].version, 's=2\n');
});

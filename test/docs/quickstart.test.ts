/**
 * The README's Quickstart runs as written: its walk-through block, taken from README.md, run by
 * bash -e against a daemon this test starts on free ports (the block reads the address from
 * LOCKBOX_ADDR and the token from ./.lockbox/admin.token, as after `npm start`), in a directory
 * that looks like a fresh clone after `npm ci` (dist/ is this build's). And every link in the
 * README stays inside the repository and names a file that exists.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';

const root = join(import.meta.dirname, '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** The ```sh block whose first line says this test runs it. */
function walkThrough(): string {
  const blocks = [...readme.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  const marked = blocks.filter((b) => b.split('\n')[0].includes('test/docs/quickstart.test.ts'));
  if (marked.length !== 1) throw new Error(`README.md: expected one block marked for test/docs/quickstart.test.ts, found ${marked.length}`);
  return marked[0];
}

function run(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

t.test('the Quickstart walk-through runs as written against a daemon', async (t) => {
  const clone = tempDir(t, 'lockbox-quickstart-');
  symlinkSync(join(root, 'dist'), join(clone, 'dist'));
  const d = await startTestDaemon(t, { dataDir: join(clone, '.lockbox') });
  t.ok(existsSync(join(clone, '.lockbox', 'admin.token')), 'the first start wrote ./.lockbox/admin.token');
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: clone, LOCKBOX_ADDR: d.daemon.address };
  const r = await run(walkThrough(), clone, env);
  t.equal(r.code, 0, `the block exits 0; stderr: ${r.stderr.slice(-2000)}`);
  t.match(r.stdout, /created demo version 1\n/);
  t.match(r.stdout, /restored demo version 1 as version 3\n/);
  t.match(r.stdout, /dry run: 1 to create, 0 to update, 0 to delete, 0 unchanged; nothing was changed/);
  t.match(r.stdout, /1 unchanged, 0 applied, 0 failed/, 'the second apply changed nothing');
  t.match(r.stdout, /revoked [0-9a-f]{16}\n/);
  t.match(r.stdout, /sk-demo-1\n/, 'the agent wrote the group\'s secret under $BENTOML_HOME');
  t.match(r.stdout, /audit log intact/);
  t.equal(readFileSync(join(clone, 'bentoml-home', 'demo', 'OPENAI_API_KEY'), 'utf8'), 'sk-demo-1');
  t.equal((await d.call('GetSecret', { scope: { resource_group: 'team-a' }, name: 'openai' })).version, 1);
  const tokens = await d.rpc('TokensService', 'ListTokens', { include_revoked: true });
  t.equal(tokens.tokens.filter((x: { revoke_time?: string }) => x.revoke_time).length, 1, 'the token it revoked is the one it made');
});

t.test('every link in README.md stays inside the repository and names a file that exists', async (t) => {
  const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);
  t.ok(links.length > 3, `${links.length} links`);
  for (const link of links) {
    t.notMatch(link, /^[a-z]+:/i, `${link}: a path in the repository, not a URL`);
    const target = resolve(root, link.split('#')[0]);
    t.notOk(relative(root, target).startsWith('..'), `${link}: inside the repository`);
    t.ok(existsSync(target), `${link}: exists`);
  }
});

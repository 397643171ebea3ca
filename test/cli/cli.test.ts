import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { runLockbox } from '../helpers/cli.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { cliBin } from '../helpers/spawn.js';

const CANARY = 'sk-CLI-CANARY-42';

const cli = runLockbox;

t.test('secret commands end to end', async (t) => {
  const d = await startTestDaemon(t);
  const dir = tempDir(t);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];
  const valueFile = join(dir, 'key.txt');
  writeFileSync(valueFile, `${CANARY}-file\n`);

  let r = await cli([...g, 'secret', 'create', 'demo', `OPENAI_API_KEY=${CANARY}`, `FROM_FILE=@${valueFile}`, 'FROM_STDIN=-', '--template', 'openai', '--path', 'demo', '--subpath', 'FROM_FILE=files', '--label', 'team=a', '--description', 'demo key'], { stdin: 'from stdin' });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'created demo version 1\n');

  r = await cli([...g, 'secret', 'create', 'hf', 'HF_TOKEN=-', '--template', 'huggingface'], { stdin: '' });
  t.equal(r.code, 1, 'HF_TOKEN=- with nothing on stdin (an unset $HF_TOKEN) stores nothing');
  t.equal(r.stderr, 'lockbox: INVALID_ARGUMENT (TEMPLATE_KEYS_MISSING): secret.data["HF_TOKEN"]: is empty; template huggingface needs a value for it\n');

  r = await cli([...g, 'secret', 'get', 'demo']);
  t.equal(r.code, 0);
  t.match(r.stdout, /keys:\s+FROM_FILE, FROM_STDIN, OPENAI_API_KEY/);
  t.match(r.stdout, /subpath FROM_FILE: files/);
  t.notMatch(r.stdout, CANARY, 'no value without --reveal');

  r = await cli([...g, '-o', 'json', 'secret', 'get', 'demo', '--reveal']);
  const shown = JSON.parse(r.stdout);
  t.same(shown.data, { OPENAI_API_KEY: CANARY, FROM_FILE: `${CANARY}-file\n`, FROM_STDIN: 'from stdin' }, 'exact bytes from args, files and stdin');
  r = await cli([...g, 'secret', 'get', 'demo', '--reveal']);
  t.match(r.stdout, new RegExp(`OPENAI_API_KEY\\s+${CANARY}`));

  r = await cli([...g, 'secret', 'update', 'demo', 'OPENAI_API_KEY=sk-new', '--remove', 'FROM_STDIN', '--label', 'env=prod']);
  t.equal(r.stdout, 'updated demo to version 2\n');
  r = await cli([...g, 'secret', 'update', 'demo', 'X=1', '--expected-version', '1']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^lockbox: ABORTED \(VERSION_CONFLICT\): secret "demo" is at version 2, not the expected 1\n$/);

  r = await cli([...g, '-o', 'yaml', 'secret', 'history', 'demo']);
  t.same(YAML.parse(r.stdout).versions.map((v: any) => v.version), [2, 1]);
  r = await cli([...g, 'secret', 'history', 'demo']);
  t.match(r.stdout, /2 \(current\)\s+update/);
  r = await cli([...g, 'secret', 'restore', 'demo', '1']);
  t.equal(r.stdout, 'restored demo version 1 as version 3\n');
  r = await cli([...g, '-o', 'json', 'secret', 'get', 'demo', '--version', '2', '--reveal']);
  t.equal(JSON.parse(r.stdout).data.OPENAI_API_KEY, 'sk-new');

  for (let i = 0; i < 5; i++) await cli([...g, 'secret', 'create', `page-${i}`, 'A=1', '--label', 'kind=page']);
  r = await cli([...g, 'secret', 'list', '--label', 'kind=page', '--limit', '2']);
  t.match(r.stdout, /^NAME\s+SCOPE\s+TYPE\s+TEMPLATE\s+VERSION\s+KEYS\s+UPDATED\npage-0 .*\npage-1 .*\n\(more: --cursor \S+\)\n$/);
  r = await cli([...g, '-o', 'json', 'secret', 'list', '--label', 'kind=page', '--limit', '2', '--all']);
  t.same(JSON.parse(r.stdout).secrets.map((s: any) => s.name), ['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);

  r = await cli([...g, 'secret', 'delete', 'demo']);
  t.equal(r.stdout, 'deleted demo (was version 3)\n');
  r = await cli([...g, 'secret', 'get', 'demo']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^lockbox: NOT_FOUND \(SECRET_NOT_FOUND\): secret "demo" not found in tenant "default", the main-tenant scope or tenant-wide\n$/);

  r = await cli([...g, 'secret', 'create', 'wide', 'A=1', '--tenant-wide']);
  t.equal(r.code, 0);
  r = await cli([...g, '-o', 'json', 'secret', 'get', 'wide', '--resource-group', '*']);
  t.equal(JSON.parse(r.stdout).scope.resource_group, '*');
  r = await cli([...g, 'secret', 'create', 'reg', 'server=ghcr.io', 'username=u', 'password=p', '--type', 'container_registry']);
  t.equal(r.code, 0, r.stderr);
  r = await cli([...g, 'secret', 'create', 'envy', 'API_KEY=1', '--mount', 'env', '--format', 'sh', '--path', 'apps/envy']);
  t.equal(r.code, 0, r.stderr);

  r = await cli([...g, 'key', 'rotate']);
  t.match(r.stdout, /^active master key mk-\w+ \(was mk-\w+\); re-wrapped \d+ data keys\n$/);
  r = await cli([...g, 'key', 'list']);
  t.match(r.stdout, /ID\s+ACTIVE\s+DATA KEYS/);
});

t.test('apply: a batch from YAML or JSON, a status per item', async (t) => {
  const d = await startTestDaemon(t);
  const dir = tempDir(t);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];
  await cli([...g, 'secret', 'create', 'old', 'A=1']);
  const file = join(dir, 'batch.yaml');
  writeFileSync(
    file,
    YAML.stringify({
      items: [
        { mode: 'create', name: 'openai', template: 'openai', data: { OPENAI_API_KEY: 'sk-1' }, mount: { kind: 'env', path: 'demo' } },
        { mode: 'create', name: 'bin', data_base64: { BLOB: Buffer.from([0xff, 0xfe, 0]).toString('base64') } },
        { mode: 'update', name: 'old', set: { B: '2' } },
        { mode: 'delete', name: 'missing' },
      ],
    }),
  );
  let r = await cli([...g, 'apply', '-f', file]);
  t.equal(r.code, 1, 'a failed item makes the exit code 1');
  t.match(r.stdout, /0\s+create\s+openai\s+OK\s+1/);
  t.match(r.stdout, /3\s+delete\s+missing\s+NOT_FOUND/);
  t.match(r.stdout, /3 applied, 1 failed\n$/);
  t.match(r.stderr, /1 of 4 items failed/);
  r = await cli([...g, '-o', 'json', 'secret', 'get', 'bin', '--reveal']);
  t.same(JSON.parse(r.stdout).data_base64, { BLOB: '//4A' }, 'binary values come back as base64');

  const json = join(dir, 'batch.json');
  writeFileSync(json, JSON.stringify([{ name: 'from-json', data: { K: 'v' } }]));
  r = await cli([...g, 'secret', 'apply', '-f', json, '--idempotency-key', 'apply-1']);
  t.equal(r.code, 0, r.stderr);
  r = await cli([...g, 'secret', 'apply', '-f', json, '--idempotency-key', 'apply-1']);
  t.equal(r.code, 0, 'a retried apply with the same key returns the first result');
  for (let i = 0; i < 2; i++) {
    r = await cli([...g, 'secret', 'update', 'from-json', 'K=w', '--idempotency-key', 'update-1']);
    t.match(r.stdout, /updated from-json to version 2/, 'a retried update answers version 2 again');
    r = await cli([...g, 'secret', 'restore', 'from-json', '1', '--idempotency-key', 'restore-1']);
    t.match(r.stdout, /as version 3/, 'a retried restore makes no version 4');
    r = await cli([...g, 'secret', 'delete', 'from-json', '--idempotency-key', 'delete-1']);
    t.equal(r.code, 0, 'a retried delete answers as the first did');
  }

  writeFileSync(json, JSON.stringify({ items: [{ name: 'x', data: { K: 'v' }, colour: 'red' }] }));
  r = await cli([...g, 'apply', '-f', json]);
  t.equal(r.code, 2);
  t.match(r.stderr, /items\[0\]: unknown field colour/);
  writeFileSync(json, '{ not json');
  r = await cli([...g, 'apply', '-f', json]);
  t.equal(r.code, 2);
  t.match(r.stderr, /not valid YAML or JSON/);
  r = await cli([...g, 'apply', '-f', join(dir, 'nope.yaml')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /cannot read .*ENOENT/);
  r = await cli([...g, 'apply', '-f', '-'], { stdin: '- mode: destroy\n  name: x\n' });
  t.match(r.stderr, /mode "destroy" must be create, update or delete/);
});

t.test('usage errors exit 2, call errors exit 1, help exits 0', async (t) => {
  const d = await startTestDaemon(t);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];
  let r = await cli([...g, 'secret', 'create', 'x', 'novalue']);
  t.equal(r.code, 2);
  t.match(r.stderr, /"novalue" must look like KEY=VALUE/);
  r = await cli([...g, 'secret', 'create', 'x', 'A=-', 'B=-']);
  t.equal(r.code, 2);
  t.match(r.stderr, /only one key can read its value from standard input/);
  r = await cli([...g, 'secret', 'create', 'x', 'A=@/does/not/exist']);
  t.equal(r.code, 2);
  t.match(r.stderr, /cannot read the value of "A" from \/does\/not\/exist: ENOENT/);
  r = await cli([...g, 'secret', 'get', 'x', '--version', 'two']);
  t.equal(r.code, 2);
  r = await cli([...g, 'secret', 'frobnicate']);
  t.equal(r.code, 2);
  r = await cli([...g, '-o', 'xml', 'secret', 'list']);
  t.equal(r.code, 2);
  r = await cli(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /Usage: lockbox/);
  r = await cli(['secret', 'create', '--help']);
  t.match(r.stdout, /KEY=@file/);
  r = await cli(['--addr', '127.0.0.1:1', '--token', d.adminToken, '--timeout', '2', 'secret', 'list']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^lockbox: UNAVAILABLE: cannot reach lockboxd/);
  r = await cli(['--addr', d.daemon.address, '--token', 'wrong', 'secret', 'list']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^lockbox: UNAUTHENTICATED: malformed token/);

  // Token fallback: ./.lockbox/admin.token in the working directory.
  const cwd = tempDir(t);
  r = await cli(['--addr', d.daemon.address, 'secret', 'list'], { cwd });
  t.equal(r.code, 2);
  t.match(r.stderr, /no token/);
  mkdirSync(join(cwd, '.lockbox'));
  writeFileSync(join(cwd, '.lockbox', 'admin.token'), d.adminToken + '\n');
  r = await cli(['--addr', d.daemon.address, 'secret', 'list'], { cwd });
  t.equal(r.code, 0, r.stderr);
});

t.test('the lockbox binary', async (t) => {
  const d = await startTestDaemon(t);
  // The daemon runs in this process, so the CLI must run asynchronously beside it.
  const run = (args: string[], input = '') =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [cliBin, ...args], { env: { ...process.env, LOCKBOX_ADDR: d.daemon.address, LOCKBOX_TOKEN: d.adminToken } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += c));
      child.stderr.on('data', (c) => (stderr += c));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
      child.stdin.end(input);
    });
  let r = await run(['secret', 'create', 'bin', 'PASSWORD=-'], 'line one\nline two');
  t.equal(r.status, 0, r.stderr);
  r = await run(['-o', 'json', 'secret', 'get', 'bin', '--reveal']);
  t.equal(JSON.parse(r.stdout).data.PASSWORD, 'line one\nline two', 'stdin read exactly, env vars honoured');
  r = await run(['secret', 'get', 'missing']);
  t.equal(r.status, 1);
  t.equal(r.stderr.split('\n').filter(Boolean).length, 1, 'one line on stderr');
  r = await run(['nope']);
  t.equal(r.status, 2);
});

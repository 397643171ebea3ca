import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runLockbox } from '../helpers/cli.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';

const cli = (args: string[], stdin = '') => runLockbox(args, { stdin });

t.test('token, deployment and audit commands', async (t) => {
  const d = await startTestDaemon(t);
  const dir = tempDir(t);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];

  let r = await cli([...g, 'secret', 'create', 'openai', 'OPENAI_API_KEY=sk-1', '--template', 'openai', '--resource-group', 'team-a', '--path', 'demo']);
  t.equal(r.code, 0, r.stderr);
  r = await cli([...g, 'secret', 'create', 'hf', 'HF_TOKEN=hf-1', '--tenant-wide', '--path', 'hf']);
  t.equal(r.code, 0, r.stderr);

  r = await cli([...g, 'deployment', 'create', 'app', '--secret', 'openai', '--secret', 'hf', '--resource-group', 'team-a']);
  t.equal(r.stdout, 'created deployment app with 2 secret(s)\n', r.stderr);
  r = await cli([...g, 'deployment', 'get', 'app', '--resource-group', 'team-a']);
  t.match(r.stdout, /secrets:\s+openai, hf \(tenant-wide\)/);
  r = await cli([...g, 'deployment', 'list', '--resource-group', 'team-a']);
  t.match(r.stdout, /app\s+1\s+openai,hf/);

  const file = join(dir, 'bento.yaml');
  writeFileSync(file, 'name: app\nbento: iris_classifier:latest\nsecrets:\n  - openai\n  - name: hf\nservices:\n  svc: {}\n---\nname: second\nsecrets: [openai]\n');
  r = await cli([...g, 'deployment', 'apply', '-f', file, '--resource-group', 'team-a']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'updated deployment app (version 2)\ncreated deployment second (version 1)\n');
  t.match(r.stderr, /note: .*deployment 1: ignored bento, services \(lockbox uses name and secrets\)/);
  writeFileSync(file, 'name: broken\nsecrets: openai\n');
  r = await cli([...g, 'deployment', 'apply', '-f', file]);
  t.equal(r.code, 2);
  t.match(r.stderr, /secrets must be a list/);

  r = await cli([...g, 'secret', 'delete', 'openai', '--resource-group', 'team-a']);
  t.equal(r.code, 1);
  t.match(r.stderr, /FAILED_PRECONDITION \(SECRET_IN_USE\): secret "openai" is mounted by deployments "app", "second"/);

  r = await cli([...g, 'token', 'create', '--role', 'agent', '--deployment', 'app', '--deployment-resource-group', 'team-a', '--description', 'sidecar']);
  t.equal(r.code, 0, r.stderr);
  const agentToken = r.stdout.trim();
  t.match(agentToken, /^lbx_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  t.match(r.stderr, /only time it is shown/);
  r = await cli(['--addr', d.daemon.address, '--token', agentToken, '-o', 'json', 'secret', 'get', 'openai', '--resource-group', 'team-a', '--reveal']);
  t.equal(JSON.parse(r.stdout).data.OPENAI_API_KEY, 'sk-1', 'the agent token reads its deployment');
  r = await cli(['--addr', d.daemon.address, '--token', agentToken, 'secret', 'list', '--resource-group', 'team-a']);
  t.equal(r.code, 1);
  t.match(r.stderr, /PERMISSION_DENIED/);

  r = await cli([...g, 'token', 'list']);
  t.match(r.stdout, /agent\s+default\s+deployment team-a\/app\s+never/);
  t.notMatch(r.stdout, agentToken.slice(21));
  const id = agentToken.slice(4, 20);
  r = await cli([...g, 'token', 'revoke', id]);
  t.equal(r.stdout, `revoked ${id}\n`);
  r = await cli(['--addr', d.daemon.address, '--token', agentToken, 'secret', 'get', 'openai', '--resource-group', 'team-a']);
  t.match(r.stderr, /UNAUTHENTICATED: token [0-9a-f]+ was revoked/);
  r = await cli([...g, 'token', 'create', '--role', 'boss']);
  t.equal(r.code, 2);

  r = await cli([...g, 'audit', 'list', '--action', 'secret.read']);
  t.match(r.stdout, /secret\.read\s+openai\s+1\s+ok/);
  r = await cli([...g, 'audit', 'list', '--limit', '2']);
  t.match(r.stdout, /\(more: --after 2\)/);
  r = await cli([...g, 'audit', 'verify']);
  t.match(r.stdout, /^audit log intact: \d+ entries verified\n$/);
  t.equal(r.code, 0);

  r = await cli([...g, 'deployment', 'delete', 'second', '--resource-group', 'team-a']);
  t.equal(r.stdout, 'deleted deployment second\n');
});

/** `lockbox apply -f`: declarative secrets and deployments in one file, --dry-run, --prune, against a real daemon. */
import t, { type Test as Tap } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { runLockbox } from '../helpers/cli.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';

const CANARY = 'apply-canary-9b2c';

const cli = (args: string[]) => runLockbox(args);

/** The file as a team would keep it in git. */
function declared(overrides: { openaiKey?: string; labels?: Record<string, string>; extraKey?: boolean; mount?: object; appSecrets?: string[]; withTools?: boolean } = {}) {
  return {
    scope: { resource_group: 'team-a' },
    secrets: [
      {
        name: 'openai',
        template: 'openai',
        labels: overrides.labels ?? { team: 'ml' },
        mount: overrides.mount ?? { kind: 'env', path: 'demo' },
        data: { OPENAI_API_KEY: overrides.openaiKey ?? `${CANARY}-1`, ...(overrides.extraKey === false ? {} : { ORG: 'org-1' }) },
      },
      { name: 'registry', type: 'container_registry', data: { server: 'ghcr.io', username: 'bot', password: `${CANARY}-pw` } },
      { name: 'blob', data_base64: { BIN: Buffer.from([0, 0xff, 0xfe]).toString('base64') } },
      ...(overrides.withTools === false ? [] : [{ name: 'tools-key', data: { TOKEN: `${CANARY}-tools` } }]),
    ],
    deployments: [
      { name: 'app', secrets: overrides.appSecrets ?? ['openai', 'registry'], description: 'model server' },
      ...(overrides.withTools === false ? [] : [{ name: 'tools', secrets: ['tools-key'] }]),
    ],
  };
}

/** A daemon, and the file declared() applied to it once. */
async function applied(t: Tap) {
  const d = await startTestDaemon(t);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];
  const file = join(tempDir(t), 'lockbox.yaml');
  writeFileSync(file, YAML.stringify(declared()));
  t.equal((await cli([...g, 'apply', '-f', file])).code, 0, 'the first apply');
  return { d, g, file };
}

t.test('create, then unchanged: the same file twice makes no new version', async (t) => {
  const d = await startTestDaemon(t);
  const dir = tempDir(t);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];
  const file = join(dir, 'lockbox.yaml');
  writeFileSync(file, YAML.stringify(declared()));

  let r = await cli([...g, 'apply', '-f', file]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /secret\s+0\s+create\s+openai\s+OK\s+1/);
  t.match(r.stdout, /deployment\s+0\s+create\s+app\s+OK\s+1/);
  t.match(r.stdout, /0 unchanged, 6 applied, 0 failed\n$/);
  const scope = { resource_group: 'team-a' };
  t.equal((await d.call('GetSecret', { scope, name: 'registry' })).type, 'container_registry');
  t.same((await d.rpc('DeploymentsService', 'GetDeployment', { scope, name: 'app' })).secrets, ['openai', 'registry']);

  r = await cli([...g, 'apply', '-f', file]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /secret\s+0\s+unchanged\s+openai\s+OK\s+1/);
  t.match(r.stdout, /6 unchanged, 0 applied, 0 failed\n$/);
  for (const name of ['openai', 'registry', 'blob', 'tools-key']) t.equal((await d.call('GetSecret', { scope, name })).version, 1, `${name}: still version 1`);
  t.equal((await d.rpc('DeploymentsService', 'GetDeployment', { scope, name: 'app' })).version, 1, 'the deployment too');

  r = await cli([...g, '-o', 'name', 'apply', '-f', file]);
  t.equal(r.stdout, 'secret/openai\nsecret/registry\nsecret/blob\nsecret/tools-key\ndeployment/app\ndeployment/tools\n', '-o name: one kind/name line each');
  t.notMatch(r.stdout, CANARY);
});

t.test('--dry-run names what would change and changes nothing; then the change lands as one new version', async (t) => {
  const { d, g, file } = await applied(t);

  writeFileSync(file, YAML.stringify(declared({ openaiKey: `${CANARY}-2`, labels: { tier: 'gold' }, extraKey: false, mount: { kind: 'file', path: 'demo' }, appSecrets: ['openai'] })));
  let r = await cli([...g, 'apply', '-f', file, '--dry-run']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /secret\s+0\s+update\s+openai\s+PLANNED\s+1\s+keys ~OPENAI_API_KEY -ORG; labels \+tier -team; mount/);
  t.match(r.stdout, /secret\s+1\s+unchanged\s+registry\s+OK\s+1/);
  t.match(r.stdout, /deployment\s+0\s+update\s+app\s+PLANNED\s+1\s+secrets -registry/);
  t.match(r.stdout, /dry run: 0 to create, 2 to update, 0 to delete, 4 unchanged; nothing was changed\n$/);
  const scope = { resource_group: 'team-a' };
  t.equal((await d.call('GetSecret', { scope, name: 'openai' })).version, 1, 'a dry run changes nothing');
  const json = await cli([...g, '-o', 'json', 'apply', '-f', file, '--dry-run']);
  t.match(JSON.parse(json.stdout), { dry_run: true, results: [{ kind: 'secret', name: 'openai', operation: 'update', changes: ['keys ~OPENAI_API_KEY -ORG', 'labels +tier -team', 'mount'] }] });
  t.notMatch(r.stdout + json.stdout, CANARY, 'never a value, old or new');

  r = await cli([...g, 'apply', '-f', file]);
  t.equal(r.code, 0, r.stderr);
  const openai = await d.call('GetSecret', { scope, name: 'openai', include_values: true });
  t.equal(openai.version, 2, 'one new version for all of its changes');
  t.same(Object.keys(openai.data), ['OPENAI_API_KEY']);
  t.equal(openai.data.OPENAI_API_KEY.toString(), `${CANARY}-2`);
  t.same(openai.labels, { tier: 'gold' });
  t.equal(openai.mount.kind, 'file');
  t.equal((await d.rpc('DeploymentsService', 'GetDeployment', { scope, name: 'app' })).version, 2);
  t.equal((await d.call('GetSecret', { scope, name: 'blob' })).version, 1, 'a binary value read back compares equal');
  t.notMatch(r.stdout + r.stderr, CANARY);
});

t.test('--prune deletes what the file no longer lists, deployments first; only the kinds the file lists', async (t) => {
  const { d, g, file } = await applied(t);
  await d.call('CreateSecret', { scope: { resource_group: 'team-b' }, secret: { name: 'elsewhere', data: { K: Buffer.from('x') } } });
  const scope = { resource_group: 'team-a' };

  writeFileSync(file, YAML.stringify(declared({ withTools: false })));
  let r = await cli([...g, 'apply', '-f', file]);
  t.match(r.stdout, /4 unchanged, 0 applied, 0 failed/, 'without --prune nothing is deleted');
  t.equal((await d.call('GetSecret', { scope, name: 'tools-key' })).name, 'tools-key');

  r = await cli([...g, 'apply', '-f', file, '--prune', '--dry-run']);
  t.match(r.stdout, /deployment\s+-\s+delete\s+tools\s+PLANNED\s+1\s+not in the file/);
  t.match(r.stdout, /secret\s+-\s+delete\s+tools-key\s+PLANNED\s+1\s+not in the file/);
  t.equal((await d.call('GetSecret', { scope, name: 'tools-key' })).name, 'tools-key', 'a dry run deletes nothing');

  // tools-key is mounted by tools: it can go only once tools has gone.
  r = await cli([...g, 'apply', '-f', file, '--prune']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /4 unchanged, 2 applied, 0 failed/);
  await t.rejects(d.call('GetSecret', { scope, name: 'tools-key' }), /not found/);
  await t.rejects(d.rpc('DeploymentsService', 'GetDeployment', { scope, name: 'tools' }), /not found/);
  t.equal((await d.call('GetSecret', { scope: { resource_group: 'team-b' }, name: 'elsewhere' })).name, 'elsewhere', 'another scope is never pruned');

  writeFileSync(file, YAML.stringify({ scope: { resource_group: 'team-a' }, deployments: [{ name: 'app', secrets: ['openai', 'registry'], description: 'model server' }] }));
  r = await cli([...g, 'apply', '-f', file, '--prune']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /1 unchanged, 0 applied, 0 failed/, 'a file without a secrets list prunes no secret');
  t.equal((await d.rpc('SecretsService', 'ListSecrets', { scope })).secrets.length, 3);
});

t.test('what apply refuses, per item or as a whole', async (t) => {
  const d = await startTestDaemon(t);
  const dir = tempDir(t);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];
  const file = join(dir, 'lockbox.yaml');
  await d.call('CreateSecret', { scope: { resource_group: '*' }, secret: { name: 'hf', template: 'huggingface', data: { HF_TOKEN: Buffer.from('wide') } } });
  await d.call('CreateSecret', { scope: { resource_group: 'team-a' }, secret: { name: 'typed', data: { K: Buffer.from('v') } } });

  // A group secret of the same name as a tenant-wide one is the group's own: created, not an update of the tenant-wide one.
  writeFileSync(file, YAML.stringify({ scope: { resource_group: 'team-a' }, secrets: [{ name: 'hf', template: 'huggingface', data: { HF_TOKEN: `${CANARY}-own` } }, { name: 'typed', type: 'container_registry', data: { server: 's', username: 'u', password: 'p' } }] }));
  const r = await cli([...g, 'apply', '-f', file]);
  t.equal(r.code, 1);
  t.match(r.stdout, /secret\s+0\s+create\s+hf\s+OK\s+1/);
  t.match(r.stdout, /secret\s+1\s+update\s+typed\s+INVALID_ARGUMENT\s+.*a secret's type never changes/);
  t.match(r.stderr, /1 of 2 items failed/);
  t.equal((await d.call('GetSecret', { scope: { resource_group: '*' }, name: 'hf', include_values: true })).data.HF_TOKEN.toString(), 'wide', 'the tenant-wide secret is untouched');

  const refusals: Array<[unknown, RegExp]> = [
    [{ secrets: [{ name: 'a', data: { K: 'v' } }, { name: 'a', data: { K: 'w' } }] }, /"a" is listed more than once/],
    [{ secrets: [{ name: 'a' }], items: [] }, /give "secrets" or its older name "items", not both/],
    [{ deployments: [{ name: 'x', secrets: ['a'], bento: 'iris' }] }, /deployments\[0\]: unknown field bento/],
    [{ scope: { group: 'x' }, secrets: [] }, /scope: unknown field group/],
    [{ nothing: true }, /unknown field nothing/],
  ];
  for (const [doc, message] of refusals) {
    writeFileSync(file, JSON.stringify(doc));
    const refused = await cli([...g, 'apply', '-f', file]);
    t.equal(refused.code, 2, String(message));
    t.match(refused.stderr, message);
  }
});

t.test('-o name on the other commands', async (t) => {
  const d = await startTestDaemon(t);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken, '-o', 'name'];
  t.equal((await cli([...g, 'secret', 'create', 'a', 'K=v'])).stdout, 'secret/a\n');
  await cli([...g, 'secret', 'create', 'b', 'K=v']);
  t.equal((await cli([...g, 'secret', 'list'])).stdout, 'secret/a\nsecret/b\n');
  t.equal((await cli([...g, 'deployment', 'create', 'app', '--secret', 'a'])).stdout, 'deployment/app\n');
  t.match((await cli([...g, 'token', 'list'])).stdout, /^token\/[0-9a-f]{16}\n$/);
  const history = await cli([...g, 'secret', 'history', 'a']);
  t.equal(history.code, 2);
  t.match(history.stderr, /-o name does not apply to this command/);
});

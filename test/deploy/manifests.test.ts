/**
 * The Kubernetes manifests (deploy/kubernetes/lockbox.yaml, the Helm chart's output: its test
 * keeps them equal) and the Dockerfile name settings, flags and paths of the programs; this keeps
 * them true as the programs change: every LOCKBOX_* variable and every flag they use must be one
 * the program's --help lists, and the paths must exist in the build.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { helmTemplate, parseManifests } from '../helpers/helm.js';
import { agentBin, agentFlags, daemonBin, repoRoot } from '../helpers/spawn.js';

// Commander wraps long lines; one space per gap makes "env: NAME" findable.
const help = (bin: string, ...args: string[]) => execFileSync(process.execPath, [bin, ...args, '--help'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
const daemonHelp = help(daemonBin);
const agentHelp = { run: help(agentBin, 'run'), once: help(agentBin, 'once') };

interface Container {
  name: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
}

function containers(manifests: string): Container[] {
  const found: Container[] = [];
  for (const doc of parseManifests(manifests)) {
    const spec = (doc as { spec?: { template?: { spec?: { containers?: Container[]; initContainers?: Container[] } } } }).spec?.template?.spec;
    found.push(...(spec?.initContainers ?? []), ...(spec?.containers ?? []));
  }
  return found;
}

/** Every lockbox container of a manifest stream uses settings and flags its program has. */
function checkAgainstHelp(t: Test, manifests: string) {
  const all = containers(manifests).filter((c) => c.name.startsWith('lockbox'));
  t.equal(all.length, 3, 'the daemon, the init agent and the sidecar agent');
  for (const c of all) {
    const isAgent = c.name.startsWith('lockbox-agent');
    const subcommand = c.args?.[0] as 'run' | 'once' | undefined;
    const text = isAgent ? agentHelp[subcommand!] : daemonHelp;
    t.ok(text, `${c.name}: a known subcommand (${subcommand ?? 'daemon'})`);
    for (const { name } of c.env ?? []) if (name.startsWith('LOCKBOX_') || name === 'BENTOML_HOME') t.match(text, `env: ${name}`, `${c.name}: ${name} is a setting`);
    for (const arg of c.args ?? []) if (arg.startsWith('--')) t.match(text, arg, `${c.name}: ${arg} is a flag`);
    if (isAgent) {
      t.same(c.command, ['node', ...agentFlags, '/app/dist/agent/lockbox-agent.js'], `${c.name}: started as the lockbox-agent command starts (${agentFlags.join(' ')})`);
      t.ok(existsSync(join(repoRoot, 'dist', 'agent', 'lockbox-agent.js')));
    }
  }
}

t.test('manifests use only settings and flags the programs have', async (t) => {
  t.same(readdirSync(join(repoRoot, 'deploy', 'kubernetes')).sort(), ['lockbox.yaml', 'values.yaml']);
  checkAgainstHelp(t, readFileSync(join(repoRoot, 'deploy', 'kubernetes', 'lockbox.yaml'), 'utf8'));
});

t.test("the chart's other settings use only settings the programs have too", async (t) => {
  // Settings the plain manifests leave out: mTLS, TLS off, an advertised NATS URL, NATS by token, creds file and CA.
  const natsBy = (type: string) => ['--set', 'nats.auth.existingSecret=nats', '--set', `nats.auth.type=${type}`];
  for (const args of [['--set', 'tls.clientAuth=true', '--set', 'nats.advertiseUrl=nats://nats.example:4222', ...natsBy('token')], ['--set', 'tls.enabled=false', '--set', 'nats.caSecret=ca', ...natsBy('creds')]]) {
    const out = helmTemplate(args);
    t.equal(out.status, 0, out.stderr);
    checkAgainstHelp(t, out.stdout);
  }
});

t.test('the Dockerfile sets only real settings and runs the built daemon', async (t) => {
  const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
  const settings = [...dockerfile.matchAll(/\b(LOCKBOX_[A-Z_]+)=/g)].map((m) => m[1]);
  t.ok(settings.length >= 3);
  for (const name of settings) t.match(daemonHelp, `env: ${name}`, `${name} is a lockboxd setting`);
  const entry = /ENTRYPOINT \["node", "\/app\/(dist\/daemon\/src\/main\.js)"\]/.exec(dockerfile);
  t.ok(entry && existsSync(join(repoRoot, entry[1])), 'the entrypoint is the built daemon');
  t.match(dockerfile, /USER 10001/, 'not root');
});

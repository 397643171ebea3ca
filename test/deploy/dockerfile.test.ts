/**
 * The Dockerfile's structure (test/helpers/dockerfile.ts numbers the rules): the real file breaks
 * none, each rule catches a Dockerfile that breaks it, and what the runtime stages copy is enough:
 * the copied files, laid out as the stage lays them out, start the programs, and the HEALTHCHECK
 * one-liner answers a real daemon.
 */
import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createServer } from 'node:net';
import { agentFlags, repoRoot } from '../helpers/spawn.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { copies, dockerfileProblems, execForm, parseDockerfile, type Stage } from '../helpers/dockerfile.js';

const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const { stages } = parseDockerfile(dockerfile);
const stage = (name: string) => stages.find((s) => s.name === name)!;

/** nats and every package it needs at run time, read from node_modules (the agent bundle leaves nats out). */
function natsClosure(): string[] {
  const found = new Set<string>();
  const visit = (name: string) => {
    if (found.has(name)) return;
    found.add(name);
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep);
  };
  visit('nats');
  return [...found].sort();
}
const agentNodeModules = natsClosure().map((n) => `/app/node_modules/${n}`);
const agentAllowed = ['/app/package.json', '/app/dist/agent/lockbox-agent.js', '/app/proto', '/app/dist/proto', ...agentNodeModules];

/** Lays out what a stage copies from the build stages, taking /app/X from the repo's X (the build stage's /app is the repo after `npm run build`). */
function layOut(s: Stage, root: string, linkNodeModules = false): void {
  for (const c of copies(s)) {
    for (const src of c.sources) {
      if (!src.startsWith('/app/')) throw new Error(`${s.name}: ${src} is not under /app`);
      const rel = src.slice('/app/'.length);
      if (linkNodeModules && rel === 'node_modules') continue;
      mkdirSync(dirname(join(root, rel)), { recursive: true });
      cpSync(join(repoRoot, rel), join(root, rel), { recursive: true });
    }
  }
  // The daemon's node_modules is the production install of prod-deps; the repo's (with dev dependencies) stands in for it.
  if (linkNodeModules) symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
}

t.test('the Dockerfile breaks none of the rules', async (t) => {
  t.same(dockerfileProblems(dockerfile, agentAllowed), []);
});

t.test('each rule catches a Dockerfile that breaks it', async (t) => {
  const mutants: Array<[string, (s: string) => string, RegExp]> = [
    ['the daemon stage renamed', (s) => s.replace('AS lockboxd', 'AS daemon'), /stages are/],
    ['the agent target dropped', (s) => s.replace(/FROM \$\{NODE_IMAGE\} AS agent[\s\S]*?(?=# lockboxd)/, ''), /stages are/],
    ['a floating base', (s) => s.replace('ARG NODE_IMAGE=node:20-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0', 'ARG NODE_IMAGE=node:latest'), /ARG NODE_IMAGE/],
    ['a tag without its digest', (s) => s.replace('ARG NODE_IMAGE=node:20-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0', 'ARG NODE_IMAGE=node:20-bookworm-slim'), /pinned by digest/],
    ['the runtime on the toolchain', (s) => s.replace('FROM ${NODE_IMAGE} AS lockboxd', 'FROM toolchain AS lockboxd'), /lockboxd: FROM toolchain/],
    ['compilers in the runtime', (s) => s.replace('WORKDIR /app\nCOPY --from=build /app/package.json ./package.json\nCOPY --from=prod-deps', 'RUN apt-get install -y g++\nWORKDIR /app\nCOPY --from=build /app/package.json ./package.json\nCOPY --from=prod-deps'), /lockboxd: installs/],
    ['the daemon as root', (s) => s.replace(/(AS lockboxd[\s\S]*?)USER 10001:10001/, '$1USER root'), /lockboxd: runs as root/],
    ['the agent without USER', (s) => s.replace(/(AS agent[\s\S]*?)USER 10001:10001\n/, '$1'), /agent: runs as root/],
    ['USER after ENTRYPOINT', (s) => s.replace(/(AS agent[\s\S]*?)USER 10001:10001\n([\s\S]*?ENTRYPOINT[^\n]*\n)/, '$1$2USER 10001\n'), /agent: USER after ENTRYPOINT/],
    ['no HEALTHCHECK', (s) => s.replace(/HEALTHCHECK[^\n]*\\\n[^\n]*\n/, ''), /no HEALTHCHECK/],
    ['a HEALTHCHECK elsewhere', (s) => s.replace('127.0.0.1:7701/healthz', '127.0.0.1:7701/readyz'), /HEALTHCHECK is not/],
    ['a HEALTHCHECK with curl', (s) => s.replace(/CMD \["node", "-e", [^\n]*/, 'CMD curl -f http://127.0.0.1:7701/healthz'), /HEALTHCHECK/],
    ['test/ copied', (s) => s.replace('COPY console ./console', 'COPY console ./console\nCOPY test ./test'), /build: copies test/],
    ['bench copied into the runtime', (s) => s.replace('COPY --from=build /app/dist/cli ./dist/cli', 'COPY --from=build /app/dist/cli ./dist/cli\nCOPY --from=build /app/dist/bench ./dist/bench'), /lockboxd: copies \/app\/dist\/bench/],
    ['scripts copied', (s) => s.replace('COPY proto ./proto', 'COPY proto ./proto\nCOPY scripts/ ./scripts/'), /build: copies scripts/],
    ['the whole of dist', (s) => s.replace('COPY --from=build /app/dist/daemon ./dist/daemon', 'COPY --from=build /app/dist ./dist'), /lockboxd: copies the whole of \/app\/dist/],
    ['node_modules from the build stage', (s) => s.replace('COPY --from=prod-deps /app/node_modules ./node_modules', 'COPY --from=build /app/node_modules ./node_modules'), /node_modules not from prod-deps/],
    ['dev dependencies kept', (s) => s.replace('npm ci --omit=dev', 'npm ci'), /installs dev dependencies/],
    ["better-sqlite3's sources kept", (s) => s.replace('rm -rf build src deps binding.gyp', 'rm -rf build'), /leftovers stay/],
    ['the agent takes all node_modules', (s) => s.replace('COPY --from=prod-deps /app/node_modules/nats ./node_modules/nats', 'COPY --from=prod-deps /app/node_modules ./node_modules'), /agent: copies prod-deps:\/app\/node_modules,/],
    ['the agent takes the daemon', (s) => s.replace('COPY --from=build /app/proto ./proto\nCOPY --from=prod-deps /app/node_modules/nats', 'COPY --from=build /app/proto ./proto\nCOPY --from=build /app/dist/daemon ./dist/daemon\nCOPY --from=prod-deps /app/node_modules/nats'), /agent: copies build:\/app\/dist\/daemon/],
  ];
  for (const [what, mutate, expected] of mutants) {
    const mutant = mutate(dockerfile);
    t.not(mutant, dockerfile, `${what}: the mutation applies`);
    t.match(dockerfileProblems(mutant, agentAllowed).join('\n'), expected, `${what} is caught`);
  }
});

t.test('the ENTRYPOINTs run files the build produces', async (t) => {
  const entry = (name: string) => execForm(stage(name).body.find((i) => i.cmd === 'ENTRYPOINT')!.args)!;
  t.same(entry('lockboxd'), ['node', '/app/dist/daemon/src/main.js']);
  t.same(entry('agent'), ['node', ...agentFlags, '/app/dist/agent/lockbox-agent.js'], 'the agent runs with the flags of its shebang');
  t.ok(existsSync(join(repoRoot, 'dist', 'daemon', 'src', 'main.js')), 'dist/daemon/src/main.js is built');
  t.ok(existsSync(join(repoRoot, 'dist', 'agent', 'lockbox-agent.js')), 'dist/agent/lockbox-agent.js is built');
});

t.test('the agent stage copies nats with what nats needs, and the agent starts from only those files', async (t) => {
  const copied = copies(stage('agent')).flatMap((c) => c.sources);
  for (const dir of agentNodeModules) t.ok(copied.includes(dir), `${dir} is copied`);
  const root = tempDir(t, 'lockbox-agent-image-');
  layOut(stage('agent'), root);
  const help = spawnSync(process.execPath, [...agentFlags, join(root, 'dist', 'agent', 'lockbox-agent.js'), 'run', '--help'], { cwd: root, encoding: 'utf8' });
  t.equal(help.status, 0, `lockbox-agent run --help from the stage's files: ${help.stderr}`);
  t.match(help.stdout, /BENTOML_HOME/);
  const nats = spawnSync(process.execPath, ['--input-type=module', '-e', "const { connect } = await import('nats'); if (typeof connect !== 'function') process.exit(3);"], { cwd: root, encoding: 'utf8' });
  t.equal(nats.status, 0, `nats loads from the stage's node_modules: ${nats.stderr}`);
});

t.test('the daemon stage starts from only its files', async (t) => {
  const root = tempDir(t, 'lockboxd-image-');
  layOut(stage('lockboxd'), root, true);
  for (const bin of ['dist/daemon/src/main.js', 'dist/cli/src/main.js']) {
    const out = execFileSync(process.execPath, [join(root, bin), '--help'], { cwd: root, encoding: 'utf8' });
    t.match(out, /Usage/, `${bin} --help`);
  }
  t.notOk(existsSync(join(root, 'dist', 'test')), 'no dist/test');
  t.notOk(existsSync(join(root, 'dist', 'bench')), 'no dist/bench');
});

t.test('the HEALTHCHECK one-liner answers 0 for a live daemon and 1 for none', async (t) => {
  const health = stage('lockboxd').body.find((i) => i.cmd === 'HEALTHCHECK')!;
  const [, , script] = execForm(health.args.replace(/^(--\S+\s+)*CMD\s+/, ''))!;
  const env = stage('lockboxd').body.filter((i) => i.cmd === 'ENV').map((i) => i.args).join(' ');
  t.match(env, /LOCKBOX_HTTP_ADDR=0\.0\.0\.0:7701\b/, 'the REST port it probes is the one the image sets');
  const d = await startTestDaemon(t);
  // Asynchronously: the daemon runs in this process, and a blocked event loop would not answer.
  const run = (port: number) =>
    new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ['-e', script.replace('127.0.0.1:7701', `127.0.0.1:${port}`)], { stdio: 'ignore' });
      child.once('exit', (code) => resolve(code));
    });
  t.equal(await run(d.daemon.httpPort!), 0, 'a live daemon is healthy');
  const closed = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
  t.equal(await run(closed), 1, 'nothing listening is unhealthy');
});

t.test('.dockerignore keeps out what the images must not carry', async (t) => {
  const ignored = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const entry of ['node_modules', 'dist', '.tap', 'test', 'bench', 'scripts', 'docs', '.git', '.lockbox']) t.ok(ignored.includes(entry), `${entry} is ignored`);
  // What the build stage copies from the context must not be ignored.
  for (const c of copies(stage('build'))) for (const src of c.sources) t.notOk(ignored.includes(src.replace(/^\.\//, '').replace(/\/$/, '')), `${src} is in the context`);
});

t.test("the daemon stage's code imports only production dependencies (prod-deps installs no others)", async (t) => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const dirs = copies(stage('lockboxd')).flatMap((c) => c.sources).filter((s) => /^\/app\/dist\/(daemon|shared|cli)$/.test(s)).map((s) => join(repoRoot, s.slice('/app/'.length)));
  t.equal(dirs.length, 3, 'dist/daemon, dist/shared and dist/cli are copied');
  const imported = new Set<string>();
  for (const dir of dirs) {
    for (const file of readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'))) {
      for (const m of readFileSync(join(dir, file), 'utf8').matchAll(/(?:from |import\()'([^'./][^']*)'/g)) {
        if (m[1].startsWith('node:')) continue;
        imported.add(m[1].startsWith('@') ? m[1].split('/').slice(0, 2).join('/') : m[1].split('/')[0]);
      }
    }
  }
  t.ok(imported.has('better-sqlite3') && imported.has('fastify'), 'the scan finds the imports');
  for (const name of [...imported].sort()) t.ok(name in pkg.dependencies, `${name} is a production dependency`);
});

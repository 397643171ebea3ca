/**
 * The plain manifests run: deploy/kubernetes/lockbox.yaml (the chart's output) is carried out as
 * the kubelet would, on this machine. (1) Each Secret the README has you create is written into a
 * volume dir with the volume's defaultMode, each emptyDir is a fresh dir, and each mount path a
 * container names is mapped to its dir (a mount inside another is a subdir of it). (2) Env values
 * from secretKeyRef are read from those Secrets; paths under a mount are rewritten to its dir,
 * 0.0.0.0:<port> to 127.0.0.1 on a free port, and the in-cluster NATS URL to a test nats-server
 * that wants the same login. (3) Two lockboxd replicas start from the Deployment's container on
 * one PostgreSQL schema, sequentially; every probe and the metrics port answer as the kubelet and
 * Prometheus would ask (HTTPS not verified, as the kubelet does not). (4) With the admin token
 * the first replica wrote, the CLI makes the example's secret, deployment and agent token; the
 * model server's init container is then run with its own command, args and env against both
 * replicas through TLS, and writes the secret 0440 for the pod's group. (5) The sidecar, run the
 * same way on the same volumes, answers its probes and writes a rotation. (6) `lockbox key rotate`
 * works with the root key on the read-only Secret, and the other replica reads on.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { runLockbox } from '../helpers/cli.js';
import { tempDir } from '../helpers/daemon.js';
import { freePort } from '../helpers/free-port.js';
import { parseManifests, type K8sObject } from '../helpers/helm.js';
import { startNats } from '../helpers/nats.js';
import { freshSchema } from '../helpers/postgres.js';
import { agentEnv, repoRoot, spawnDaemon } from '../helpers/spawn.js';
import { makeCertificates } from '../helpers/tls.js';
import { until } from '../helpers/wait.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Secrets = Record<string, Record<string, string>>;

const manifests = parseManifests(readFileSync(join(repoRoot, 'deploy', 'kubernetes', 'lockbox.yaml'), 'utf8'));
const deployment = (name: string) => manifests.find((o) => o.kind === 'Deployment' && o.metadata.name === name) as K8sObject;

/** (1) The pod's volumes as dirs, and where each mount path of `container` lands. */
function mountVolumes(dir: string, pod: any, container: any, secrets: Secrets): Map<string, string> {
  const volumeDirs = new Map<string, string>();
  for (const volume of pod.volumes) {
    const local = join(dir, `volume-${volume.name}`);
    mkdirSync(local, { recursive: true });
    volumeDirs.set(volume.name, local);
    if (!volume.secret) continue;
    const data = secrets[volume.secret.secretName];
    if (!data) throw new Error(`the manifests mount Secret ${volume.secret.secretName}, which the README does not have you create`);
    for (const item of volume.secret.items ?? Object.keys(data).map((key) => ({ key, path: key }))) {
      writeFileSync(join(local, item.path), data[item.key], { mode: volume.secret.defaultMode });
    }
  }
  const mounts = new Map<string, string>();
  for (const m of [...container.volumeMounts].sort((a: any, b: any) => a.mountPath.length - b.mountPath.length)) {
    const parent = [...mounts.keys()].find((p) => m.mountPath.startsWith(`${p}/`));
    const local = parent ? join(mounts.get(parent)!, m.mountPath.slice(parent.length + 1)) : volumeDirs.get(m.name)!;
    mkdirSync(local, { recursive: true });
    mounts.set(m.mountPath, local);
  }
  return mounts;
}

/** (2) A path under a mount becomes its dir; 0.0.0.0:<port> becomes 127.0.0.1 on the local port `ports` maps it to. */
function localValue(value: string, mounts: Map<string, string>, ports: Map<number, number>): string {
  for (const [path, local] of mounts) if (value === path || value.startsWith(`${path}/`)) return local + value.slice(path.length);
  const listen = /^0\.0\.0\.0:(\d+)$/.exec(value);
  return listen ? `127.0.0.1:${ports.get(Number(listen[1]))}` : value;
}

/** (2) The container's env as the process would see it here. */
function processEnv(container: any, mounts: Map<string, string>, secrets: Secrets, ports: Map<number, number>, overrides: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env) {
    const value: string = e.valueFrom ? secrets[e.valueFrom.secretKeyRef.name]?.[e.valueFrom.secretKeyRef.key] : e.value;
    if (value === undefined) throw new Error(`${e.name}: Secret ${e.valueFrom.secretKeyRef.name} has no key ${e.valueFrom.secretKeyRef.key}`);
    env[e.name] = localValue(value, mounts, ports);
  }
  return { ...env, ...overrides };
}

/** A container of the pod run with its own command and args (paths under /app/ are the repo's), rewritten as its env is. */
function runContainer(t: { teardown(fn: () => unknown): void }, container: any, env: Record<string, string>, mounts: Map<string, string>, ports: Map<number, number>) {
  const [command, ...nodeArgs] = container.command.map((a: string) => (a === 'node' ? process.execPath : a.replace(/^\/app\//, `${repoRoot}/`)));
  let stderr = '';
  const child = execFile(command, [...nodeArgs, ...container.args.map((a: string) => localValue(a, mounts, ports))], { env: agentEnv(env) });
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  t.teardown(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { exited, stderr: () => stderr };
}

function probe(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const done = (res: any) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    };
    const req = url.startsWith('https:') ? httpsGet(url, { rejectUnauthorized: false }, done) : httpGet(url, done);
    req.on('error', reject);
  });
}

t.test('the plain manifests start two replicas on PostgreSQL that an agent gets its secrets from', async (t) => {
  const certs = makeCertificates(tempDir(t));
  const natsPassword = randomBytes(12).toString('hex');
  const nats = await startNats(t, { user: 'lockboxd', password: natsPassword });
  // What README "Kubernetes and Helm" has you create.
  const secrets: Secrets = {
    'lockboxd-database': { url: await freshSchema(t) },
    'lockboxd-root-key': { 'root.key': randomBytes(32).toString('base64') },
    'lockboxd-tls': { 'tls.crt': readFileSync(certs.serverCert, 'utf8'), 'tls.key': readFileSync(certs.serverKey, 'utf8'), 'ca.crt': readFileSync(certs.ca, 'utf8') },
    'lockboxd-nats': { user: 'lockboxd', password: natsPassword },
  };

  // (3)
  const d = deployment('lockbox');
  const pod = d.spec.template.spec;
  const container = pod.containers[0];
  t.equal(container.name, 'lockboxd');
  t.notOk(container.command, "lockboxd runs the image's entrypoint (the built daemon)");
  const replicas: Array<{ addr: string; mounts: Map<string, string>; ports: Map<number, number>; named: Map<string, number> }> = [];
  for (let i = 0; i < Math.min(d.spec.replicas, 2); i++) {
    const ports = new Map<number, number>();
    const named = new Map<string, number>();
    for (const p of container.ports) {
      ports.set(p.containerPort, await freePort());
      named.set(p.name, ports.get(p.containerPort)!);
    }
    const mounts = mountVolumes(tempDir(t), pod, container, secrets);
    const env = processEnv(container, mounts, secrets, ports, { LOCKBOX_NATS_URL: nats.url });
    t.equal(statSync(env.LOCKBOX_ROOT_KEY_FILE).mode & 0o777, 0o440, 'the root key is 0440, as the Secret volume makes it');
    const daemon = await spawnDaemon(['--http-addr', env.LOCKBOX_HTTP_ADDR], env);
    t.teardown(() => daemon.child.kill('SIGKILL'));
    replicas.push({ addr: daemon.addr, mounts, ports, named });
  }
  t.equal(replicas.length, 2);
  const rootKeyDir = container.volumeMounts.find((m: any) => m.name === 'root-key').mountPath;

  for (const [i, r] of replicas.entries()) {
    for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const { path, port, scheme } = container[kind].httpGet;
      const url = `${scheme.toLowerCase()}://127.0.0.1:${typeof port === 'string' ? r.named.get(port) : r.ports.get(port)}${path}`;
      await until(`replica ${i}: ${kind} ${path} answers 200`, async () => (await probe(url).catch(() => ({ status: 0 }))).status === 200);
      t.pass(`replica ${i}: ${kind} (${scheme} ${path}) answers 200`);
    }
    const readyz = `https://127.0.0.1:${r.named.get(container.readinessProbe.httpGet.port)}/readyz`;
    await until(`replica ${i} logged in to NATS with the Secret's user and password`, async () => JSON.parse((await probe(readyz)).body).nats === 'connected');
    t.same(JSON.parse((await probe(readyz)).body), { status: 'ready', nats: 'connected', database: 'reachable' }, `replica ${i}: ready, NATS connected with the Secret's login`);
    const metrics = await probe(`http://127.0.0.1:${r.named.get('metrics')}/metrics`);
    t.match(metrics.body, /^lockbox_build_info\{/m, `replica ${i}: Prometheus finds the metrics on the port the ServiceMonitor names`);
  }

  // (4)
  const adminTokens = replicas.map((r) => join(r.mounts.get('/data')!, 'admin.token')).filter((f) => existsSync(f));
  t.equal(adminTokens.length, 1, 'one replica wrote the bootstrap admin token to its /data');
  const cli = (...args: string[]) => runLockbox(['--addr', replicas[1].addr, '--tls-ca', certs.ca, '--token-file', adminTokens[0], ...args]);
  t.equal((await cli('secret', 'create', 'openai', 'OPENAI_API_KEY=sk-from-the-chart', '--path', 'demo')).code, 0);
  t.equal((await cli('deployment', 'create', 'demo-llm', '--secret', 'openai')).code, 0);
  const created = await cli('-o', 'json', 'token', 'create', '--role', 'agent', '--deployment', 'demo-llm');
  t.equal(created.code, 0, created.stderr);
  const agentToken = (JSON.parse(created.stdout) as { token: string }).token;

  const model = deployment('demo-llm').spec.template.spec;
  const init = model.initContainers[0];
  const agentSecrets: Secrets = { 'lockbox-agent-token': { token: agentToken }, 'lockbox-ca': { 'ca.crt': readFileSync(certs.ca, 'utf8') } };
  const mounts = mountVolumes(realpathSync(tempDir(t)), model, init, agentSecrets);
  const env = processEnv(init, mounts, agentSecrets, new Map(), { LOCKBOX_ADDR: replicas.map((r) => r.addr).join(','), LOCKBOX_NATS_URL: 'none' });
  const initRun = runContainer(t, init, env, mounts, new Map());
  t.equal(await initRun.exited, 0, 'the init container exits 0', { stderr: initRun.stderr() });
  const written = join(env.BENTOML_HOME, 'demo', 'OPENAI_API_KEY');
  t.equal(readFileSync(written, 'utf8'), 'sk-from-the-chart', 'the secret is in $BENTOML_HOME/demo, the memory volume');
  t.equal(statSync(written).mode & 0o777, 0o440, 'file mode 0440');
  t.equal(statSync(written).gid, Number(env.LOCKBOX_GROUP), "owned by the pod's group");

  // (5) The sidecar, on the same volumes: its probes answer, and a rotation reaches the file.
  const sidecar = model.containers.find((c: any) => c.name === 'lockbox-agent');
  const healthPorts = new Map<number, number>([[sidecar.ports[0].containerPort, await freePort()]]);
  t.same(processEnv(sidecar, mounts, agentSecrets, healthPorts, { LOCKBOX_ADDR: env.LOCKBOX_ADDR, LOCKBOX_NATS_URL: 'none' }), env, 'the sidecar has the init container\'s settings');
  const running = runContainer(t, sidecar, env, mounts, healthPorts);
  for (const kind of ['readinessProbe', 'livenessProbe']) {
    const { path, port } = sidecar[kind].httpGet;
    const url = `http://127.0.0.1:${healthPorts.get(sidecar.ports.find((p: any) => p.name === port).containerPort)}${path}`;
    await until(`sidecar ${kind} ${path} answers 200`, async () => (await probe(url).catch(() => ({ status: 0 }))).status === 200);
    t.pass(`sidecar: ${kind} (${path}) answers 200`);
  }
  t.equal((await cli('secret', 'update', 'openai', 'OPENAI_API_KEY=sk-rotated')).code, 0);
  await until('the rotation reaches the file', () => readFileSync(written, 'utf8') === 'sk-rotated');
  t.pass('the sidecar wrote the rotated value');
  t.equal(await Promise.race([running.exited, Promise.resolve('running')]), 'running', 'the sidecar keeps running', { stderr: running.stderr() });

  // (6) A keyring rotation with the root key on a read-only Secret volume; the other replica reads through the new key.
  const rootKeys = replicas.map((r) => readFileSync(join(r.mounts.get(rootKeyDir)!, 'root.key'), 'utf8'));
  const rotated = await cli('key', 'rotate');
  t.equal(rotated.code, 0, 'key rotate succeeds with the root key read-only', { stderr: rotated.stderr });
  t.same(replicas.map((r) => readFileSync(join(r.mounts.get(rootKeyDir)!, 'root.key'), 'utf8')), rootKeys, 'the root key files are untouched');
  const read = await runLockbox(['--addr', replicas[0].addr, '--tls-ca', certs.ca, '--token-file', adminTokens[0], '-o', 'json', 'secret', 'get', 'openai', '--reveal']);
  t.equal(read.code, 0, read.stderr);
  t.match(read.stdout, 'sk-rotated', 'the other replica reads the value after the rotation');
});

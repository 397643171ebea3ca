/**
 * The Helm chart deploy/helm/lockbox, rendered as `helm template` renders it
 * (test/helpers/helm.ts): every object valid against the Kubernetes schemas in each setting the
 * values offer, the objects wired to each other (selectors, ports, volumes, Secrets), the plain
 * manifests under deploy/kubernetes/ equal to the chart's output, and the renderer doing what
 * Helm does for the constructs the chart uses. Flags and env are checked against each program's
 * --help in manifests.test.ts.
 */
import t, { type Test } from 'tap';
import { Ajv } from 'ajv';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chartDir, helmTemplate, parseManifests, validateObject, type K8sObject } from '../helpers/helm.js';
import { repoRoot } from '../helpers/spawn.js';

function render(...args: string[]): K8sObject[] {
  const out = helmTemplate(args);
  if (out.status !== 0) throw new Error(`render failed: ${out.stderr}`);
  return parseManifests(out.stdout);
}

const find = (objects: K8sObject[], kind: string, name?: string) => objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
const env = (container: any) => Object.fromEntries((container.env ?? []).map((e: any) => [e.name, e.value ?? e.valueFrom])); // eslint-disable-line @typescript-eslint/no-explicit-any
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** What must hold between the objects of one render whatever the values. */
function checkWiring(t: Test, objects: K8sObject[]) {
  for (const deployment of find(objects, 'Deployment')) {
    const pod = deployment.spec.template;
    const name = deployment.metadata.name;
    t.ok(matches(deployment.spec.selector.matchLabels, pod.metadata.labels), `${name}: its selector matches its pods`);
    const volumes = new Set((pod.spec.volumes ?? []).map((v: { name: string }) => v.name));
    for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
      for (const m of c.volumeMounts ?? []) t.ok(volumes.has(m.name), `${name}/${c.name}: volume ${m.name} exists`);
      if (c.name === 'model-server') continue;
      t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${name}/${c.name}: read-only root filesystem`);
      const portNames = new Set((c.ports ?? []).map((p: { name: string }) => p.name));
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe].filter(Boolean))
        if (typeof probe.httpGet.port === 'string') t.ok(portNames.has(probe.httpGet.port), `${name}/${c.name}: probe port ${probe.httpGet.port} is a container port`);
    }
  }
  const lockboxd = find(objects, 'Deployment').find((d) => d.spec.template.spec.containers[0].name === 'lockboxd')!;
  const podLabels = lockboxd.spec.template.metadata.labels;
  const portNames = new Set(lockboxd.spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name));
  for (const service of find(objects, 'Service')) {
    t.ok(matches(service.spec.selector, podLabels), `Service ${service.metadata.name} selects lockboxd's pods`);
    for (const port of service.spec.ports) t.ok(portNames.has(port.targetPort), `Service ${service.metadata.name}: ${port.targetPort} is a container port`);
  }
  for (const pdb of find(objects, 'PodDisruptionBudget')) t.ok(matches(pdb.spec.selector.matchLabels, podLabels), 'the PDB covers lockboxd');
  for (const np of find(objects, 'NetworkPolicy')) {
    t.ok(matches(np.spec.podSelector.matchLabels, podLabels), 'the NetworkPolicy applies to lockboxd');
    for (const rule of np.spec.ingress) for (const p of rule.ports) t.ok(portNames.has(p.port), `NetworkPolicy: ${p.port} is a container port`);
  }
  for (const sm of find(objects, 'ServiceMonitor')) {
    const scraped = find(objects, 'Service').filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels));
    t.ok(scraped.some((s) => s.spec.ports.some((p: { name: string }) => p.name === sm.spec.endpoints[0].port)), 'the ServiceMonitor selects a Service with its port');
  }
}

t.test('the plain manifests are the chart rendered with deploy/kubernetes/values.yaml', async (t) => {
  const out = helmTemplate(['-f', join(repoRoot, 'deploy', 'kubernetes', 'values.yaml')]);
  t.equal(out.status, 0, out.stderr);
  // scripts/render-manifests.sh writes the file; a chart edit without it fails here.
  t.equal(out.stdout, readFileSync(join(repoRoot, 'deploy', 'kubernetes', 'lockbox.yaml'), 'utf8'), 'deploy/kubernetes/lockbox.yaml is up to date (run scripts/render-manifests.sh)');
  // helm template's order: kinds in Helm's install order, a kind it does not know (ServiceMonitor) last, one kind by source file.
  t.same(parseManifests(out.stdout).map((o) => o.kind), ['NetworkPolicy', 'PodDisruptionBudget', 'Service', 'Service', 'Deployment', 'Deployment', 'ServiceMonitor']);
  t.same([...out.stdout.matchAll(/^# Source: (.*)$/gm)].map((m) => m[1]).slice(4, 6), ['lockbox/templates/lockboxd-deployment.yaml', 'lockbox/templates/model-server-example.yaml']);
});

t.test('every object of the default render is valid and wired to the others', async (t) => {
  const objects = render();
  t.same(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
    'Deployment/demo-llm',
    'Deployment/lockbox',
    'NetworkPolicy/lockbox',
    'PodDisruptionBudget/lockbox',
    'Service/lockbox',
    'Service/lockbox-headless',
    'ServiceMonitor/lockbox',
  ]);
  for (const o of objects) await t.resolves(validateObject(o), `${o.kind} ${o.metadata.name} is valid`);
  checkWiring(t, objects);

  const [lockboxd] = find(objects, 'Deployment', 'lockbox');
  const pod = lockboxd.spec.template.spec;
  const settings = env(pod.containers[0]);
  t.equal(lockboxd.spec.replicas, 3, 'three replicas');
  t.same(settings.LOCKBOX_DATABASE_URL, { secretKeyRef: { name: 'lockboxd-database', key: 'url' } }, 'the database URL comes from a Secret');
  t.equal(settings.LOCKBOX_ROOT_KEY_FILE, '/var/run/lockbox/root-key/root.key', 'the root key file is the mounted Secret');
  const rootKey = pod.volumes.find((v: any) => v.name === 'root-key'); // eslint-disable-line @typescript-eslint/no-explicit-any
  t.equal(rootKey.secret.defaultMode, 0o440, 'the key is 0440: the pod group only (fsGroup), as lockboxd accepts');
  t.equal(pod.securityContext.fsGroup, pod.securityContext.runAsGroup, 'the fsGroup is the process group');
  t.ok(pod.containers[0].volumeMounts.find((m: any) => m.name === 'root-key').readOnly, 'mounted read-only'); // eslint-disable-line @typescript-eslint/no-explicit-any
  t.equal(settings.LOCKBOX_TLS_CERT, '/var/run/lockbox/tls/tls.crt', 'TLS on by default');
  t.equal(pod.containers[0].readinessProbe.httpGet.scheme, 'HTTPS', 'probes speak TLS to the REST port');
  t.ok(pod.containers[0].resources.requests.cpu && pod.containers[0].resources.limits.memory, 'resources set');
  t.same(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey, 'kubernetes.io/hostname', 'one replica per node');
  t.ok(pod.containers[0].volumeMounts.some((m: { mountPath: string }) => m.mountPath === settings.LOCKBOX_DATA_DIR), 'the data dir is a volume (admin.token is written there)');

  const np = find(objects, 'NetworkPolicy')[0];
  const egressPorts = np.spec.egress.flatMap((r: any) => r.ports.map((p: any) => p.port)); // eslint-disable-line @typescript-eslint/no-explicit-any
  t.same(egressPorts.sort(), [4222, 53, 53, 5432].sort(), 'out: DNS, PostgreSQL, NATS only');
  t.notOk(settings.LOCKBOX_NATS_USER, 'no NATS credentials unless a Secret is named');
  const [model] = find(objects, 'Deployment', 'demo-llm');
  t.ok(matches(np.spec.ingress[0].from[0].podSelector.matchLabels, model.spec.template.metadata.labels), "the model server's agents may reach lockboxd");
  const agent = model.spec.template.spec.containers.find((c: { name: string }) => c.name === 'lockbox-agent');
  t.equal(env(agent).LOCKBOX_ADDR, 'lockbox-headless.lockbox.svc:7700', 'agents list every replica through the headless Service');
  t.equal(env(agent).LOCKBOX_TLS_CA, '/var/run/lockbox/ca/ca.crt', 'agents verify lockboxd');
  t.same(env(model.spec.template.spec.initContainers[0]), env(agent), 'init container and sidecar share their settings');
  const secretsVolume = model.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'secrets');
  t.equal(secretsVolume.emptyDir.medium, 'Memory', 'the secrets never reach the node disk');
});

t.test('each setting the values offer renders valid objects', async (t) => {
  const variants: Array<[string, string[], (t: Test, objects: K8sObject[]) => void]> = [
    ['TLS off', ['--set', 'tls.enabled=false'], (t, objects) => {
      const [d] = find(objects, 'Deployment', 'lockbox');
      t.notOk(env(d.spec.template.spec.containers[0]).LOCKBOX_TLS_CERT);
      t.equal(d.spec.template.spec.containers[0].livenessProbe.httpGet.scheme, 'HTTP');
      t.notOk(env(find(objects, 'Deployment', 'demo-llm')[0].spec.template.spec.containers[1]).LOCKBOX_TLS_CA);
    }],
    ['mTLS', ['--set', 'tls.clientAuth=true'], (t, objects) => {
      t.equal(env(find(objects, 'Deployment', 'lockbox')[0].spec.template.spec.containers[0]).LOCKBOX_TLS_CLIENT_CA, '/var/run/lockbox/tls/ca.crt');
    }],
    ['NATS token', ['--set', 'nats.auth.existingSecret=nats-token', '--set', 'nats.auth.type=token'], (t, objects) => {
      const settings = env(find(objects, 'Deployment', 'lockbox')[0].spec.template.spec.containers[0]);
      t.same(settings.LOCKBOX_NATS_TOKEN, { secretKeyRef: { name: 'nats-token', key: 'token' } });
      t.notOk(settings.LOCKBOX_NATS_PASSWORD);
    }],
    ['NATS creds file and CA', ['--set', 'nats.auth.existingSecret=nats-creds', '--set', 'nats.auth.type=creds', '--set', 'nats.caSecret=nats-ca', '--set', 'nats.url=tls://a:4222\\,tls://b:4222'], (t, objects) => {
      const pod = find(objects, 'Deployment', 'lockbox')[0].spec.template.spec;
      const settings = env(pod.containers[0]);
      t.equal(settings.LOCKBOX_NATS_CREDS, '/var/run/lockbox/nats/nats.creds');
      t.equal(settings.LOCKBOX_NATS_CA, '/var/run/lockbox/nats-ca/ca.crt');
      t.equal(settings.LOCKBOX_NATS_URL, 'tls://a:4222,tls://b:4222');
      const mounts = Object.fromEntries(pod.containers[0].volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]));
      t.equal(mounts['nats-creds'], '/var/run/lockbox/nats');
      t.equal(mounts['nats-ca'], '/var/run/lockbox/nats-ca');
      t.same(pod.volumes.find((v: { name: string }) => v.name === 'nats-creds').secret.secretName, 'nats-creds');
    }],
    ['preferred anti-affinity', ['--set', 'lockboxd.antiAffinity=preferred'], (t, objects) => {
      t.ok(find(objects, 'Deployment', 'lockbox')[0].spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution);
    }],
    ['no PDB, NetworkPolicy, ServiceMonitor or example', ['--set', 'podDisruptionBudget.enabled=false', '--set', 'networkPolicy.enabled=false', '--set', 'serviceMonitor.enabled=false', '--set', 'modelServer.enabled=false'], (t, objects) => {
      t.same(objects.map((o) => o.kind).sort(), ['Deployment', 'Service', 'Service']);
    }],
    ['five replicas, a digest, extra env, node selector', ['--set', 'lockboxd.replicas=5', '--set', 'image.tag=sha256:0123', '--set', 'lockboxd.nodeSelector.pool=secure', '-f', extraEnvFile()], (t, objects) => {
      const [d] = find(objects, 'Deployment', 'lockbox');
      t.equal(d.spec.replicas, 5);
      t.equal(d.spec.template.spec.containers[0].image, 'lockbox@sha256:0123');
      t.same(d.spec.template.spec.nodeSelector, { pool: 'secure' });
      t.equal(env(d.spec.template.spec.containers[0]).LOCKBOX_MAX_VERSIONS, '20');
    }],
    ['a release named otherwise, ServiceMonitor labels', ['--set', 'serviceMonitor.labels.release=prometheus'], (t, objects) => {
      t.equal(find(objects, 'ServiceMonitor')[0].metadata.labels!.release, 'prometheus');
    }],
  ];
  for (const [name, args, check] of variants)
    await t.test(name, async (t) => {
      const objects = render(...args);
      for (const o of objects) await t.resolves(validateObject(o), `${o.kind} ${o.metadata.name} is valid`);
      checkWiring(t, objects);
      check(t, objects);
    });

  await t.test('a release not named lockbox gets prefixed names', async (t) => {
    const out = helmTemplate([], { release: 'prod', namespace: 'secrets' });
    const objects = parseManifests(out.stdout);
    t.same(find(objects, 'Service').map((s) => s.metadata.name).sort(), ['prod-lockboxd', 'prod-lockboxd-headless']);
    t.ok(objects.filter((o) => o.metadata.name.startsWith('prod')).every((o) => o.metadata.namespace === 'secrets'));
    t.equal(env(find(objects, 'Deployment', 'demo-llm')[0].spec.template.spec.containers[1]).LOCKBOX_ADDR, 'prod-lockboxd-headless.secrets.svc:7700');
  });
});

function extraEnvFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'helm-values-')), 'values.yaml');
  writeFileSync(file, 'lockboxd:\n  extraEnv:\n    - name: LOCKBOX_MAX_VERSIONS\n      value: "20"\n');
  return file;
}

t.test('a value the chart needs and lacks stops the render, naming it', async (t) => {
  const badType = helmTemplate(['--set', 'nats.auth.existingSecret=x', '--set', 'nats.auth.type=kerberos']);
  t.not(badType.status, 0);
  t.match(badType.stderr, 'nats.auth.type must be userPassword, token or creds');
  for (const [set, named] of [['database.existingSecret=', 'database.existingSecret'], ['rootKey.existingSecret=', 'rootKey.existingSecret'], ['tls.existingSecret=', 'tls.existingSecret']]) {
    const out = helmTemplate(['--set', set]);
    t.not(out.status, 0, `${set} fails`);
    t.match(out.stderr, named, `the error names ${named}`);
  }
});

t.test('the renderer does what helm template does for what the chart uses', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'helm-chart-'));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'templates'));
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: probe\nversion: 1.2.3\nappVersion: "4.5"\n');
  writeFileSync(join(dir, 'values.yaml'), 'a:\n  b: 1\n  c: [x, z]\nname: one\n');
  writeFileSync(join(dir, 'templates', '_h.tpl'), '{{- define "p.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end -}}\n');
  writeFileSync(join(dir, 'templates', 'b.yaml'), 'x: {{ include "p.name" . }}\nmissing: {{ .Values.nope }}\nv: {{ .Chart.Version }}/{{ .Chart.AppVersion }}\n---\ny: {{ tpl "{{ .Values.name }}" . | quote }}\n');
  writeFileSync(join(dir, 'templates', 'a.yaml'), 'a:\n  {{- toYaml .Values.a | nindent 2 }}\nb64: {{ "hi" | b64enc }}\nd: {{ .Values.unset | default "dflt" }}\n');
  writeFileSync(join(dir, 'templates', 'c.yaml'), '{{- if .Values.never }}\nnever: true\n{{- end }}\n');
  const out = helmTemplate(['--set', 'a.b=2,name=two'], { release: 'r', namespace: 'ns', chart: dir });
  t.equal(out.status, 0, out.stderr);
  // Files in name order, one "# Source" per document, blank renders left out, "<no value>" as nothing, toYaml keys sorted and lists unindented (sigs.k8s.io/yaml).
  t.equal(out.stdout, [
    '---', '# Source: probe/templates/a.yaml', 'a:', '  b: 2', '  c:', '  - x', '  - z', 'b64: aGk=', 'd: dflt',
    '---', '# Source: probe/templates/b.yaml', 'x: probe-r', 'missing: ', 'v: 1.2.3/4.5',
    '---', '# Source: probe/templates/b.yaml', 'y: "two"', '',
  ].join('\n'));
  // --set as Helm's strvals: commas split, a backslash escapes, a key without a value is refused.
  const typed = helmTemplate(['--set', 'name=a\\,b', '--set', 'a.b=007,a.c=TRUE'], { chart: dir });
  t.match(typed.stdout, 'y: "a,b"');
  t.match(typed.stdout, "a:\n  b: \"007\"\n  c: true\n", 'a leading zero keeps a string; TRUE is a boolean');
  const noValue = helmTemplate(['--set', 'name=x,b'], { chart: dir });
  t.not(noValue.status, 0);
  t.match(noValue.stderr, 'key "b" has no value');
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v1\nname: probe\nversion: 1.2.3\n');
  const v1 = helmTemplate([], { chart: dir });
  t.not(v1.status, 0);
  t.match(v1.stderr, 'expected v2 (Helm 3)');
});

t.test('the chart is a standard Helm 3 chart with every value documented', async (t) => {
  const chart = parseManifests(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'))[0] as unknown as Record<string, string>;
  t.equal(chart.apiVersion, 'v2');
  t.equal(chart.version, JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version, 'the chart version is the package version');
  // Every key line of values.yaml has a comment on the line(s) just above it or its block's.
  const lines = readFileSync(join(chartDir, 'values.yaml'), 'utf8').split('\n');
  lines.forEach((line, i) => {
    const key = /^(\s*)([A-Za-z][\w.-]*):/.exec(line);
    if (!key || /^\s+(requests|limits|cpu|memory|[a-z.]+\/[a-z-]+|app\.kubernetes\.io\/name):/.test(line)) return;
    t.match(lines[i - 1], /^\s*#/, `values.yaml line ${i + 1} (${key[2]}) has a comment`);
  });
});

t.test('values.schema.json holds the defaults and the plain manifests\' values, and refuses typos and unknown choices', async (t) => {
  // helm checks the merged values against the chart's values.schema.json on template and install.
  const validate = new Ajv({ allErrors: true }).compile(JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')));
  const defaults = () => parseManifests(readFileSync(join(chartDir, 'values.yaml'), 'utf8'))[0] as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  const merge = (base: any, over: any): any => { // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const [k, v] of Object.entries(over)) base[k] = v && typeof v === 'object' && !Array.isArray(v) && base[k] && typeof base[k] === 'object' ? merge(base[k], v) : v;
    return base;
  };
  t.ok(validate(defaults()), JSON.stringify(validate.errors));
  t.ok(validate(merge(defaults(), parseManifests(readFileSync(join(repoRoot, 'deploy', 'kubernetes', 'values.yaml'), 'utf8'))[0])), JSON.stringify(validate.errors));
  for (const [over, problem] of [
    [{ lockboxd: { replica: 3 } }, /"additionalProperty":"replica"/],
    [{ lockboxd: { antiAffinity: 'sometimes' } }, /antiAffinity.*must be equal to one of the allowed values/],
    [{ nats: { auth: { type: 'kerberos' } } }, /auth\/type.*must be equal to one of the allowed values/],
    [{ modelServer: { fileMode: '440' } }, /fileMode.*must match pattern/],
    [{ lockboxd: { extraEnv: [{ name: 'DEBUG', value: '1' }] } }, /extraEnv\/0\/name.*must match pattern/],
  ] as const) {
    t.notOk(validate(merge(defaults(), over)), `${JSON.stringify(over)} is refused`);
    t.match(JSON.stringify(validate.errors), problem);
  }
});

t.test('the NATS and PostgreSQL examples are valid objects', async (t) => {
  for (const file of ['nats.yaml', 'postgres.yaml']) {
    const objects = parseManifests(readFileSync(join(repoRoot, 'deploy', 'examples', file), 'utf8'));
    for (const o of objects) await t.resolves(validateObject(o), `${file}: ${o.kind} ${o.metadata.name} is valid`);
  }
  const nats = parseManifests(readFileSync(join(repoRoot, 'deploy', 'examples', 'nats.yaml'), 'utf8'));
  t.equal(find(nats, 'StatefulSet', 'nats')[0].spec.replicas, 3, 'three NATS nodes');
  const conf = (find(nats, 'ConfigMap')[0] as any).data['nats.conf'] as string; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const i of [0, 1, 2]) t.match(conf, `nats-${i}.nats-cluster.nats.svc:6222`, `route to node ${i}`);
  const values = parseManifests(readFileSync(join(repoRoot, 'deploy', 'kubernetes', 'values.yaml'), 'utf8'))[0] as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  t.equal(values.nats.url, 'nats://nats.nats.svc:4222', "the plain manifests use the example's NATS Service");
  t.match(conf, /authorization \{\s*user: lockboxd\s*password: \$LOCKBOXD_PASSWORD/, 'the example NATS wants a login');
  const natsEnv = env(find(nats, 'StatefulSet')[0].spec.template.spec.containers[0]);
  t.same(natsEnv.LOCKBOXD_PASSWORD, { secretKeyRef: { name: 'nats-lockboxd', key: 'password' } }, 'its password comes from a Secret');
  t.same(values.nats.auth, { existingSecret: 'lockboxd-nats', type: 'userPassword' }, 'the plain manifests log in as that user');
  t.ok(matches(values.networkPolicy.natsServers.podLabels, find(nats, 'StatefulSet')[0].spec.template.metadata.labels), "the NetworkPolicy lets lockboxd reach the example's NATS pods");
  const pg = parseManifests(readFileSync(join(repoRoot, 'deploy', 'examples', 'postgres.yaml'), 'utf8'));
  t.ok(matches(values.networkPolicy.postgres.podLabels, find(pg, 'StatefulSet')[0].spec.template.metadata.labels), "the NetworkPolicy lets lockboxd reach the example's PostgreSQL");
});

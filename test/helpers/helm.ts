/**
 * Renders the Helm chart as `helm template` does, with scripts/helm-render (Go, Helm's template
 * pieces; no helm binary can be installed where this is built). The renderer is compiled once per
 * test process into a temp dir, from Debian's Go packages in GOPATH mode (no network).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './spawn.js';

export const chartDir = join(repoRoot, 'deploy', 'helm', 'lockbox');
let renderer: string | undefined;

function rendererBin(): string {
  if (renderer) return renderer;
  const dir = mkdtempSync(join(tmpdir(), 'helm-render-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  try {
    execFileSync('go', ['build', '-o', join(dir, 'helm-render'), '.'], {
      cwd: join(repoRoot, 'scripts', 'helm-render'),
      // GOCACHE: go refuses to build without one, and a CI environment may have no HOME to put it in.
      env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'lockbox-go-build-cache'), PATH: `${process.env.PATH}:/usr/lib/go/bin` },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  } catch (error) {
    throw new Error(`cannot build scripts/helm-render (Debian's golang-go, golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v2-dev, which .ci/run installs): ${(error as Error).message}`);
  }
  return (renderer = join(dir, 'helm-render'));
}

export interface Rendered {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** helm template RELEASE CHART --namespace NS plus `args` (-f FILE, --set k=v). */
export function helmTemplate(args: string[], { release = 'lockbox', namespace = 'lockbox', chart = chartDir } = {}): Rendered {
  const run = spawnSync(rendererBin(), ['--namespace', namespace, ...args, release, chart], { encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  [key: string]: unknown;
}

/**
 * Every document of a stream, parsed as Kubernetes reads YAML (1.1: 0440 is octal). Throws on a
 * parse error or a duplicate key, both of which kubectl would refuse.
 */
export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text, { version: '1.1', uniqueKeys: true })
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`manifest does not parse: ${doc.errors.map((e) => e.message).join('; ')}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/**
 * Validates one object against the Kubernetes OpenAPI schemas (kubernetes-models; the
 * ServiceMonitor against prometheus-operator's CRD, @kubernetes-models/prometheus-operator):
 * types, required fields, enums, formats. Throws naming the object and the first problems.
 */
export async function validateObject(o: K8sObject): Promise<void> {
  const module = o.apiVersion.startsWith('monitoring.coreos.com/') ? `@kubernetes-models/prometheus-operator/${o.apiVersion}` : `kubernetes-models/${o.apiVersion}`;
  const models = (await import(module)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = models[o.kind];
  if (!Model) throw new Error(`${o.kind} ${o.metadata?.name}: no schema for ${o.apiVersion} ${o.kind}`);
  try {
    new Model(o).validate();
  } catch (error) {
    throw new Error(`${o.kind} ${o.metadata?.name}: ${(error as Error).message}`);
  }
}

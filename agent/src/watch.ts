/**
 * For Node apps that read mounted secrets: `watchSecrets(dir, onChange)` calls `onChange` with
 * every file of the mount (by relative path) each time the agent swaps `..data`, reading all of
 * them from the one version `..data` points at, so the set is always consistent.
 *
 *   import { watchSecrets } from 'lockbox';
 *   const w = watchSecrets(`${process.env.BENTOML_HOME}/demo`, ({ files }) => {
 *     client.apiKey = files.get('OPENAI_API_KEY')!.toString();
 *   });
 *
 * Why chokidar here and fs.watch in the agent (agent.ts, step (6)): this runs inside an app, on
 * any platform a developer runs it (macOS, Windows, network file systems where inotify is
 * missing and chokidar falls back to polling), watches one dir for two names, and fires once per
 * swap, so chokidar's re-listing of the dir on each event costs nothing that matters. The agent
 * instead watches every mount and every version dir all day, in every pod, on Linux only; there
 * chokidar's re-list and stat per event (the agent's own swaps included) cost more CPU per
 * rotation than the rotation itself (measured), so it uses bare inotify and judges events by name.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { watch } from 'chokidar';

export interface SecretsSnapshot {
  /** Relative path → content, from one version. */
  files: Map<string, Buffer>;
  /** The ..version text: "name=version" lines. */
  version: string;
}

function readVersion(dir: string): { target: string; snapshot: SecretsSnapshot } | undefined {
  let target: string;
  try {
    target = readlinkSync(join(dir, '..data'));
  } catch {
    return undefined;
  }
  const root = join(dir, target);
  const files = new Map<string, Buffer>();
  const walk = (rel: string) => {
    for (const entry of readdirSync(join(root, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(path);
      else if (path !== '..version') files.set(path, readFileSync(join(root, path)));
    }
  };
  try {
    walk('');
    return { target, snapshot: { files, version: readFileSync(join(root, '..version'), 'utf8') } };
  } catch {
    return undefined; // swapped again while reading: the next event brings the newer one
  }
}

export function watchSecrets(dir: string, onChange: (snapshot: SecretsSnapshot) => void): { ready: Promise<void>; close: () => Promise<void> } {
  let last = '';
  const check = () => {
    const current = readVersion(dir);
    if (!current || current.target === last) return;
    last = current.target;
    onChange(current.snapshot);
  };
  const watcher = watch(dir, { depth: 0, ignoreInitial: true, followSymlinks: false, ignored: (path) => /\/\.\.\d{4}_/.test(path) });
  watcher.on('all', (_event, path) => {
    if (path.endsWith('/..data') || path.endsWith('/..version')) check();
  });
  const ready = new Promise<void>((resolve) => watcher.once('ready', () => {
    check();
    resolve();
  }));
  return { ready, close: () => watcher.close() };
}

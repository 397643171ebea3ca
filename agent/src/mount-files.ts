/**
 * The write/repair half of the agent (agent.ts is the session/failover half): turns what the
 * agent holds into files under $BENTOML_HOME, one atomic writer per mount dir, keeps them as
 * written, and says what is on disk. The numbers continue agent.ts's steps.
 * 5. A deleted secret's files go; a dir no secret uses any more is cleared.
 * 6. Tamper repair: each mount dir and the version in place are watched (inotify), so a file
 *    deleted, replaced or changed under the agent is seen at once and `onTampered` asks for a
 *    repair pass (which compares everything, contents included); each repair is logged by path,
 *    never by value. Where a watch cannot be set up, a full check every second does the job.
 * 8. Reports say what is on disk: a version left out or not written yet does not count as
 *    applied, and the problems go with it.
 * A mount dir that cannot be written for a reason that may pass (a disk error) comes back from
 * apply() as a MountWriteError, after the other dirs were written (the agent NACKs and retries);
 * a path refused for safety (PathSafetyError) is reported as a problem and not retried.
 * The caller never runs two apply() at once (the agent's sync queue).
 */
import { watch, type FSWatcher } from 'node:fs';
import type { AgentMetrics } from './agent-metrics.js';
import { AtomicWriter, DATA_LINK, PathSafetyError, type WriterModes } from './atomic-writer.js';
import { render, type HeldSecret, type Rendered } from './render.js';

/** Entries of a mount dir that the writer itself replaces on every write. */
const OWN_ENTRY = /^\.\.(data|data_tmp|\d{4}_.*)$/;

export interface AgentLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** A mount dir could not be written for a reason that may pass (a full disk, say): the sync is retried. */
export class MountWriteError extends Error {
  override name = 'MountWriteError';
}

export interface MountFilesOptions {
  /** $BENTOML_HOME, already resolved. */
  home: string;
  modes: WriterModes;
  log: AgentLog;
  metrics?: AgentMetrics;
  /** Called after every apply that changed files (exec uses it). */
  onChange?: (rendered: Rendered) => void;
  /** Step (6): something changed under the agent; the caller queues a repair pass (apply with `repairing`). */
  onTampered: () => void;
}

/** What the daemon hears of a held secret: the version on disk and since when (version 0 when none is). */
export interface AppliedVersion {
  name: string;
  uid: string;
  version: number;
  applied_time: string;
}

export class MountFiles {
  private readonly writers = new Map<string, AtomicWriter>();
  /** When each held version was first written here. */
  private readonly applied = new Map<string, { uid: string; version: number; time: string }>();
  /** Step (6), while tamper repair is on: per mount dir, its watch and its current version's. */
  private watches: Map<string, { mount: FSWatcher | undefined; versionDir: string; version: FSWatcher[] }> | undefined;
  private repairTimer: NodeJS.Timeout | undefined;
  private repairInterval: NodeJS.Timeout | undefined;
  lastRendered: Rendered | undefined;
  /** Problems of the last render (reported to the daemon, never values). */
  problems: string[] = [];

  constructor(private readonly options: MountFilesOptions) {}

  /** Waits for the writers' background steps (the durable swap, old versions removed). */
  async settle(): Promise<void> {
    await Promise.all([...this.writers.values()].map((w) => w.settle()));
  }

  /** Step (8): per held secret, what is on disk. */
  appliedVersions(held: Iterable<HeldSecret>): AppliedVersion[] {
    return [...held].map((s) => {
      const onDisk = this.applied.get(s.name);
      return { name: s.name, uid: onDisk?.uid ?? '', version: onDisk?.version ?? 0, applied_time: onDisk?.time ?? '' };
    });
  }

  /**
   * Renders what is held and writes every dir (a no-op where nothing changed). `repairing`: a
   * repair pass (rewrites are logged as repairs). `trustWritten`: a dir whose version text
   * equals what its writer last wrote is not read back from disk. `news`: whether the daemon
   * should hear of it (a version landed on disk, a secret went, the problems changed);
   * `failure`: the dirs not written for a reason that may pass (the caller retries).
   */
  async apply(held: Map<string, HeldSecret>, repairing = false, trustWritten = false): Promise<{ news: boolean; failure?: MountWriteError }> {
    const { log, metrics } = this.options;
    const rendered = render([...held.values()].sort((a, b) => a.name.localeCompare(b.name)));
    let changed = false;
    const rewatch: string[] = [];
    const onDisk = new Set<string>(); // secrets whose dir is written: only they count as applied
    const failed: string[] = [];
    // Dirs are independent: write them side by side so their fsyncs overlap.
    await Promise.all(
      [...rendered.dirs].map(async ([path, payload]) => {
        let writer = this.writers.get(path);
        if (!writer) {
          writer = new AtomicWriter(this.options.home, path, this.options.modes, log);
          this.writers.set(path, writer);
        }
        try {
          const wrote = await writer.write(payload, rendered.versions.get(path)!, { trustWritten });
          for (const line of rendered.versions.get(path)!.trim().split('\n')) onDisk.add(line.slice(0, line.lastIndexOf('=')));
          this.followVersion(writer);
          if (wrote) {
            metrics?.wrote(path, repairing);
            if (!repairing) changed = true;
            if (repairing) {
              log.warn({ path: writer.dir }, 'files were changed or deleted under the agent; restored');
              rewatch.push(writer.dir); // the dir itself may have been re-created: watch it anew
            }
            else log.info({ path: writer.dir, secrets: rendered.versions.get(path)!.trim().split('\n') }, 'wrote secrets');
          }
        } catch (error) {
          rendered.problems.push(`mount "${path}" not written: ${(error as Error).message}`);
          metrics?.writeFailed();
          // A refused path stays refused; a disk error (full, read-only, I/O) may clear: retried.
          if (!(error instanceof PathSafetyError)) failed.push(path);
        }
      }),
    );
    for (const [path, writer] of this.writers) {
      if (rendered.dirs.has(path)) continue;
      await writer.clear(); // (5)
      this.writers.delete(path);
      changed = true;
      log.info({ path: writer.dir }, 'removed files of secrets no longer mounted');
    }
    this.watchMounts(rewatch);
    const now = new Date().toISOString();
    // (8) What the daemon hears changes when a version lands on disk, a secret goes, or problems change.
    let news = rendered.problems.length !== this.problems.length || rendered.problems.some((p, i) => p !== this.problems[i]);
    for (const secret of held.values()) {
      // Left out (a problem) or not written: rollout status keeps what was last on disk.
      if (!onDisk.has(secret.name)) continue;
      const seen = this.applied.get(secret.name);
      if (seen?.uid === secret.uid && seen.version === secret.version) continue;
      this.applied.set(secret.name, { uid: secret.uid, version: secret.version, time: now });
      news = true;
    }
    for (const name of [...this.applied.keys()]) if (!held.has(name)) news = this.applied.delete(name) || news;
    for (const problem of rendered.problems) if (!this.problems.includes(problem)) log.warn({ problem }, 'problem with a mounted secret');
    this.problems = rendered.problems;
    this.lastRendered = rendered;
    if (changed) this.options.onChange?.(rendered);
    if (!failed.length) return { news };
    return { news, failure: new MountWriteError(rendered.problems.filter((p) => failed.some((f) => p.startsWith(`mount "${f}" `))).join('; ')) };
  }

  /**
   * Step (6), by inotify (fs.watch), so a change under the agent is seen at once and a quiet
   * agent costs nothing: per mount, the mount dir itself (one level; never the rest of
   * $BENTOML_HOME, which holds models) and the version ..data points at (with its subdirs),
   * re-pointed after each write. Events are judged by name: in the mount dir, `..data_tmp` and
   * `..<timestamp>` entries are the writer's own; a `..data` event is the writer's own swap when
   * ..data points where it put it. Anything else schedules a repair pass. (chokidar, which
   * `watchSecrets` uses, re-lists and stats a dir on every event, the agent's own swaps included:
   * measured, that cost a sidecar more CPU per rotation than the rotation itself.)
   */
  watchForTampering(): void {
    this.watches = new Map();
    this.watchMounts();
  }

  private scheduleRepair(): void {
    clearTimeout(this.repairTimer);
    this.repairTimer = setTimeout(() => this.options.onTampered(), 50);
  }

  private watchDir(dir: string, onEvent: (name: string | null) => void): FSWatcher | undefined {
    try {
      const watcher = watch(dir, { persistent: false }, (_event, name) => onEvent(name));
      watcher.on('error', () => watcher.close()); // the dir went: the repair pass re-creates it and watches it again
      return watcher;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.pollForTampering(error as Error);
      return undefined;
    }
  }

  /** Brings the watches in line with the writers: new mounts watched, gone ones (and `rewatch`) dropped and watched anew. */
  private watchMounts(rewatch: string[] = []): void {
    const watches = this.watches;
    if (!watches) return;
    const current = new Set([...this.writers.values()].map((w) => w.dir));
    for (const [dir, watched] of watches) {
      if (current.has(dir) && !rewatch.includes(dir)) continue;
      for (const w of [watched.mount, ...watched.version]) w?.close();
      watches.delete(dir);
    }
    for (const writer of this.writers.values()) {
      if (!watches.has(writer.dir)) {
        const mount = this.watchDir(writer.dir, (name) => {
          if (name === null || !OWN_ENTRY.test(name)) return this.scheduleRepair();
          if (name === DATA_LINK && !writer.ownSwap()) this.scheduleRepair();
        });
        watches.set(writer.dir, { mount, versionDir: '', version: [] });
      }
      this.followVersion(writer);
    }
  }

  /** Points a mount's version watch at the version its writer has in place (right after each write, before the old one is removed). */
  private followVersion(writer: AtomicWriter): void {
    const watched = this.watches?.get(writer.dir);
    if (!watched) return;
    const dirs = writer.versionDirs();
    if ((dirs[0] ?? '') === watched.versionDir) return;
    for (const w of watched.version) w.close();
    watched.version = dirs.map((d) => this.watchDir(d, () => this.scheduleRepair())).filter((w) => w !== undefined);
    watched.versionDir = dirs[0] ?? '';
  }

  /** The fallback where inotify cannot watch (e.g. out of watches): a full check every second. */
  private pollForTampering(error: Error): void {
    if (this.repairInterval) return;
    this.options.log.warn({ err: error.message }, 'cannot watch the mount dirs; checking them every second instead');
    this.repairInterval = setInterval(() => this.options.onTampered(), 1000);
    this.repairInterval.unref();
  }

  /** Stops watching (the files stay as they are). */
  close(): void {
    clearTimeout(this.repairTimer);
    clearInterval(this.repairInterval);
    for (const watched of this.watches?.values() ?? []) for (const w of [watched.mount, ...watched.version]) w?.close();
  }
}

/**
 * The agent's life: keep the deployment's secrets on disk, current, and report what it holds.
 * 1. Start: ask the daemon for the deployment (GetAgentConfig), fetch every secret, write them,
 *    report, then count as ready.
 * 2. Follow notices on NATS (the deployment's resource group and the tenant-wide scope). A notice
 *    for a mounted secret, newer than what is held, fetches that secret and rewrites its dir. A
 *    notice for the deployment itself (secrets attached or detached) re-reads it and syncs all.
 * 3. Resync everything on each (re)connect to NATS and every resync interval, so a lost notice
 *    costs at most one interval; the deployment itself is re-read then too.
 * 4. Never go back: a fetched version older than the one held (same uid) is ignored.
 * 5. A deleted secret's files go; a dir no secret uses any more is cleared.
 * 6. Tamper repair: each mount dir and the version in place are watched (inotify), so a file
 *    deleted, replaced or changed under the agent is restored at once (a repair pass compares
 *    everything, contents included); each repair is logged by path, never by value. Every full
 *    resync checks everything too.
 * 7. A sync that fails (the daemon away, or a disk error: a mount dir not written, its readers
 *    left on the version before) is tried again after a jittered backoff (250 ms doubling to
 *    5 s); a notice or resync meanwhile joins it. A path refused for safety is not retried.
 * 8. Reports say what is on disk: a version left out or not written yet does not count as
 *    applied, and the problems go with it.
 * Syncs never overlap: a notice that arrives during one marks the next.
 */
import { realpathSync, watch, type FSWatcher } from 'node:fs';
import { hostname } from 'node:os';
import type { NatsConnection, Subscription } from 'nats';
import { Backoff } from '../../shared/src/backoff.js';
import { LockboxClient, type ClientOptions } from '../../shared/src/client.js';
import { DEPLOYMENTS_PREFIX, type ChangeNotice } from '../../shared/src/subject.js';
import { mountFromMessage, type MountMessage } from '../../shared/src/layout.js';
import { userRecord } from '../../shared/src/user-keys.js';
import { AtomicWriter, DATA_LINK, PathSafetyError, type WriterModes } from './atomic-writer.js';
import { render, type HeldSecret, type Rendered } from './render.js';
import { AgentSession } from './session.js';

/** Entries of a mount dir that the writer itself replaces on every write. */
const OWN_ENTRY = /^\.\.(data|data_tmp|\d{4}_.*)$/;

export interface AgentLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface AgentOptions {
  client: ClientOptions;
  bentomlHome: string;
  /** Overrides the NATS URL the daemon advertises; "none" disables notices (resync only). */
  natsUrl?: string;
  resyncIntervalMs: number;
  modes: WriterModes;
  agentId?: string;
  log: AgentLog;
  /** Called after every sync that changed files (exec uses it). */
  onChange?: (rendered: Rendered) => void;
  /** Tamper repair (default on). */
  repair?: boolean;
}

interface SecretMessage {
  name: string;
  uid: string;
  type: string;
  version: number;
  scope: { resource_group: string };
  mount: MountMessage;
  data?: Record<string, Uint8Array>;
}

function toHeld(secret: SecretMessage): HeldSecret {
  const mount = mountFromMessage(secret.mount, secret.name);
  const data = userRecord(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v)] as const));
  return { name: secret.name, resourceGroup: secret.scope?.resource_group ?? '', uid: secret.uid, version: secret.version, type: secret.type || 'opaque', mount, data };
}

/** A mount dir could not be written for a reason that may pass (a full disk, say): the sync is retried. */
export class MountWriteError extends Error {
  override name = 'MountWriteError';
}

export class Agent {
  readonly client: LockboxClient;
  /** Every call to the daemon goes through one session (agent/src/session.ts). */
  private readonly session: AgentSession;
  readonly home: string;
  readonly agentId: string;
  private deploymentSecrets: string[] = [];
  private held = new Map<string, HeldSecret>();
  /** When each held version was first written here. */
  private applied = new Map<string, { uid: string; version: number; time: string }>();
  private writers = new Map<string, AtomicWriter>();
  private nc: NatsConnection | undefined;
  private subscriptions: Subscription[] = [];
  /** Step (6), while tamper repair is on: per mount dir, its watch and its current version's. */
  private watches: Map<string, { mount: FSWatcher | undefined; versionDir: string; version: FSWatcher[] }> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private pending: { all: boolean; names: Set<string>; repair?: boolean } = { all: false, names: new Set() };
  private stopped = false;
  private repairTimer: NodeJS.Timeout | undefined;
  /** Step (7): the retry of a failed sync, and its backoff (250 ms doubling to 5 s, ±20 %). */
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly syncBackoff = new Backoff({ initialMs: 250, maxMs: 5000, jitter: 0.2 });
  private repairInterval: NodeJS.Timeout | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  ready = false;
  lastRendered: Rendered | undefined;
  /** Problems of the last render (reported to the daemon, never values). */
  problems: string[] = [];

  constructor(private readonly options: AgentOptions) {
    this.client = new LockboxClient(options.client);
    this.session = new AgentSession(this.client, options.client.timeoutMs ?? 30_000);
    this.home = realpathSync(options.bentomlHome);
    this.agentId = options.agentId ?? `${hostname()}/${process.pid}`;
  }

  /** Step (1): one full sync. Throws when the daemon cannot be reached. */
  async syncOnce(): Promise<void> {
    await this.refreshDeployment();
    await this.sync({ all: true, names: new Set() });
    await this.settle(); // an init container exits next: every swap must be on disk
    await this.report();
  }

  /** Waits for the writers' background steps (the durable swap, old versions removed). */
  private async settle(): Promise<void> {
    await Promise.all([...this.writers.values()].map((w) => w.settle()));
  }

  /** Steps (1)-(3). */
  async start(): Promise<void> {
    const config = await this.refreshDeployment();
    await this.sync({ all: true, names: new Set() });
    this.ready = true;
    const natsUrl = this.options.natsUrl ?? config.nats_url;
    if (natsUrl && natsUrl !== 'none') void this.follow(natsUrl, config.subjects ?? []);
    else this.options.log.warn({}, 'no NATS URL: relying on resync only');
    this.scheduleResync();
    if (this.options.repair !== false) this.watchForTampering();
  }

  private async refreshDeployment(): Promise<{ nats_url?: string; subjects?: string[]; deployment?: { secrets?: string[] } }> {
    const config = await this.session.config();
    this.deploymentSecrets = config.deployment?.secrets ?? [];
    return config;
  }

  private scheduleResync(): void {
    clearTimeout(this.resyncTimer);
    if (this.stopped) return;
    this.resyncTimer = setTimeout(() => {
      void this.refreshDeployment()
        .then(() => this.request({ all: true }))
        .catch((error: Error) => this.options.log.warn({ err: error.message }, 'resync failed; will retry'))
        .finally(() => this.scheduleResync());
    }, this.options.resyncIntervalMs);
    this.resyncTimer.unref();
  }

  /** Step (2). */
  private async follow(url: string, subjects: string[]): Promise<void> {
    const { log } = this.options;
    // Loaded here, after the agent is ready: start-up needs only gRPC (and `once` never follows).
    const { connect } = await import('nats');
    for (const backoff = new Backoff({ initialMs: 250, maxMs: 5000 }); !this.stopped; ) {
      try {
        this.nc = await connect({ servers: url, name: `lockbox-agent ${this.agentId}`, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 2000 });
        break;
      } catch (error) {
        log.warn({ nats: url, err: (error as Error).message }, 'NATS not reachable; resync keeps files current meanwhile');
        await backoff.wait();
      }
    }
    const nc = this.nc;
    if (!nc || this.stopped) return void nc?.close();
    for (const subject of subjects) {
      // A callback, not the async iterator: no queue and promise per message.
      const sub = nc.subscribe(subject, {
        callback: (error, message) => {
          if (error) return log.warn({ subject, err: error.message }, 'subscription error; resync keeps files current');
          try {
            const notice = JSON.parse(message.string()) as ChangeNotice;
            if (message.subject.startsWith(`${DEPLOYMENTS_PREFIX}.`)) this.onDeploymentNotice(notice);
            else this.onNotice(notice);
          } catch {
            log.warn({ subject: message.subject }, 'ignored a malformed notice');
          }
        },
      });
      this.subscriptions.push(sub);
    }
    await nc.flush();
    log.info({ nats: url }, 'following change notices');
    this.request({ all: true }); // a notice may have been missed before the subscription
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'reconnect') {
          log.info({}, 'NATS back: resyncing');
          this.request({ all: true }); // (3)
        }
      }
    })();
  }

  private onNotice(notice: ChangeNotice): void {
    if (!this.deploymentSecrets.includes(notice.name)) return;
    const held = this.held.get(notice.name);
    if (held && held.uid === notice.uid && notice.version <= held.version && notice.operation !== 'delete') return; // (4)
    this.request({ names: [notice.name] });
  }

  /** The deployment changed (secrets attached or detached): re-read it and sync everything. */
  private onDeploymentNotice(notice: ChangeNotice): void {
    this.options.log.info({ deployment: notice.name, version: notice.version, operation: notice.operation }, 'deployment changed: re-reading it');
    void this.refreshDeployment().then(
      () => this.request({ all: true }),
      (error: Error) => this.options.log.warn({ err: error.message }, 'could not re-read the deployment; keeping the files as they are until the next resync'),
    );
  }

  /** Queues a sync and starts it; syncs never overlap. */
  request(what: { all?: boolean; names?: Iterable<string>; repair?: boolean }): Promise<void> {
    this.queue(what);
    // Only with work queued: drain() then awaits before it clears `syncing`, so it is never left set.
    if (!this.syncing && this.hasPending()) this.syncing = this.drain();
    return this.syncing ?? Promise.resolve();
  }

  private hasPending(): boolean {
    return this.pending.all || this.pending.names.size > 0 || this.pending.repair === true;
  }

  private queue(what: { all?: boolean; names?: Iterable<string>; repair?: boolean }): void {
    if (what.all) this.pending.all = true;
    if (what.repair) this.pending.repair = true;
    for (const name of what.names ?? []) this.pending.names.add(name);
  }

  private async drain(): Promise<void> {
    try {
      while (!this.stopped && this.hasPending()) {
        const batch = this.pending;
        this.pending = { all: false, names: new Set() };
        try {
          await this.sync(batch);
          this.syncBackoff.reset();
        } catch (error) {
          // (7) What failed is tried again after a jittered backoff (or sooner, by the next notice).
          this.queue(batch);
          const delay = this.syncBackoff.next();
          this.options.log.warn({ err: (error as Error).message, retry_ms: delay }, 'sync failed; retrying');
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => void this.request({}), delay);
          break;
        }
      }
    } finally {
      this.syncing = undefined;
    }
  }

  private async sync(batch: { all: boolean; names: Set<string>; repair?: boolean }): Promise<void> {
    if (!batch.all && batch.names.size === 0) return this.apply(true);
    const names = batch.all ? this.deploymentSecrets : [...batch.names].filter((n) => this.deploymentSecrets.includes(n));
    const response = names.length ? await this.session.fetch(names) : { secrets: [] };
    let changed = false;
    for (const fetched of response.secrets ?? []) {
      if (fetched.missing || !fetched.secret) {
        changed = this.held.delete(fetched.name) || changed; // (5)
        continue;
      }
      const next = toHeld(fetched.secret);
      const held = this.held.get(next.name);
      if (held && held.uid === next.uid && next.version <= held.version) continue; // (4)
      this.held.set(next.name, next);
      changed = true;
    }
    if (batch.all) for (const name of [...this.held.keys()]) if (!this.deploymentSecrets.includes(name)) changed = this.held.delete(name) || changed;
    // A notice touches a few secrets: dirs whose version text this agent wrote last are left
    // alone. A full resync looks at every dir on disk too.
    await this.apply(false, !batch.all);
    if (changed || batch.all) this.scheduleReport();
  }

  /**
   * Renders what is held and writes every dir (a no-op where nothing changed). `trustWritten`:
   * a dir whose version text equals what its writer last wrote is not read back from disk.
   */
  private async apply(repairing = false, trustWritten = false): Promise<void> {
    const rendered = render([...this.held.values()].sort((a, b) => a.name.localeCompare(b.name)));
    let changed = false;
    const rewatch: string[] = [];
    const onDisk = new Set<string>(); // secrets whose dir is written: only they count as applied
    const failed: string[] = [];
    // Dirs are independent: write them side by side so their fsyncs overlap.
    await Promise.all(
      [...rendered.dirs].map(async ([path, payload]) => {
        let writer = this.writers.get(path);
        if (!writer) {
          writer = new AtomicWriter(this.home, path, this.options.modes, this.options.log);
          this.writers.set(path, writer);
        }
        try {
          const wrote = await writer.write(payload, rendered.versions.get(path)!, { trustWritten });
          for (const line of rendered.versions.get(path)!.trim().split('\n')) onDisk.add(line.slice(0, line.lastIndexOf('=')));
          this.followVersion(writer);
          if (wrote) {
            if (!repairing) changed = true;
            if (repairing) {
              this.options.log.warn({ path: writer.dir }, 'files were changed or deleted under the agent; restored');
              rewatch.push(writer.dir); // the dir itself may have been re-created: watch it anew
            }
            else this.options.log.info({ path: writer.dir, secrets: rendered.versions.get(path)!.trim().split('\n') }, 'wrote secrets');
          }
        } catch (error) {
          rendered.problems.push(`mount "${path}" not written: ${(error as Error).message}`);
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
      this.options.log.info({ path: writer.dir }, 'removed files of secrets no longer mounted');
    }
    this.watchMounts(rewatch);
    const now = new Date().toISOString();
    // What the daemon hears changes when a version lands on disk, a secret goes, or problems change.
    let news = rendered.problems.length !== this.problems.length || rendered.problems.some((p, i) => p !== this.problems[i]);
    for (const secret of this.held.values()) {
      // Left out (a problem) or not written: rollout status keeps what was last on disk.
      if (!onDisk.has(secret.name)) continue;
      const seen = this.applied.get(secret.name);
      if (seen?.uid === secret.uid && seen.version === secret.version) continue;
      this.applied.set(secret.name, { uid: secret.uid, version: secret.version, time: now });
      news = true;
    }
    for (const name of [...this.applied.keys()]) if (!this.held.has(name)) news = this.applied.delete(name) || news;
    for (const problem of rendered.problems) if (!this.problems.includes(problem)) this.options.log.warn({ problem }, 'problem with a mounted secret');
    this.problems = rendered.problems;
    if (news) this.scheduleReport();
    this.lastRendered = rendered;
    if (changed) this.options.onChange?.(rendered);
    if (failed.length) {
      // The sync fails, so it is retried; the daemon has heard of the problem meanwhile (above).
      throw new MountWriteError(rendered.problems.filter((p) => failed.some((f) => p.startsWith(`mount "${f}" `))).join('; '));
    }
  }

  /** Reports at most every 250 ms: a burst of updates costs the daemon one write per agent. */
  private scheduleReport(): void {
    if (this.reportTimer || this.stopped) return;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      void this.report();
    }, 250);
  }

  private async report(): Promise<void> {
    // What is on disk, not what is held: a version left out or not written yet is not applied
    // (version 0 when none ever was), so `lockbox status` lists the agent with its problems.
    const applied = [...this.held.values()].map((s) => {
      const onDisk = this.applied.get(s.name);
      return { name: s.name, resource_group: s.resourceGroup, uid: onDisk?.uid ?? '', version: onDisk?.version ?? 0, applied_time: onDisk?.time ?? '' };
    });
    await this.session
      .report({ agent_id: this.agentId, applied, resync_interval_seconds: Math.max(1, Math.round(this.options.resyncIntervalMs / 1000)), problems: this.problems })
      .catch((error: Error) => this.options.log.warn({ err: error.message }, 'status report failed'));
  }

  /**
   * Step (6), by inotify (fs.watch), so a change under the agent is seen at once and a quiet
   * agent costs nothing: per mount, the mount dir itself (one level; never the rest of
   * $BENTOML_HOME, which holds models) and the version ..data points at (with its subdirs),
   * re-pointed after each write. Events are judged by name: in the mount dir, `..data_tmp` and
   * `..<timestamp>` entries are the writer's own; a `..data` event is the writer's own swap when
   * ..data points where it put it. Anything else schedules a repair pass. Where a watch cannot be
   * set up, a full check every second does the job. (chokidar, which `watchSecrets` uses,
   * re-lists and stats a dir on every event, the agent's own swaps included: measured, that cost
   * a sidecar more CPU per rotation than the rotation itself.)
   */
  private watchForTampering(): void {
    this.watches = new Map();
    this.watchMounts();
  }

  private scheduleRepair(): void {
    clearTimeout(this.repairTimer);
    this.repairTimer = setTimeout(() => void this.repair(), 50);
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
    this.repairInterval = setInterval(() => void this.repair(), 1000);
    this.repairInterval.unref();
  }

  /** Re-applies what is held: every dir that no longer matches is rewritten (through the sync queue). */
  repair(): Promise<void> {
    if (!this.lastRendered || this.stopped) return Promise.resolve();
    return this.request({ repair: true });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.resyncTimer);
    clearTimeout(this.repairTimer);
    clearTimeout(this.retryTimer);
    clearInterval(this.repairInterval);
    clearTimeout(this.reportTimer);
    for (const watched of this.watches?.values() ?? []) for (const w of [watched.mount, ...watched.version]) w?.close();
    await this.syncing;
    await this.settle();
    for (const sub of this.subscriptions) sub.unsubscribe();
    await this.nc?.close().catch(() => {});
    this.session.close();
    this.client.close();
  }
}

/**
 * The agent's life: keep the deployment's secrets on disk, current, and report what it holds.
 * This is the session/failover half; mount-files.ts is the write/repair half (steps 5, 6, 8).
 * 1. Start: open a session to a daemon and resync (say what is held: nothing yet); the daemon
 *    answers with a push of every secret the deployment resolves; write them, ACK, then count as
 *    ready.
 * 2. Pushes: the daemon pushes every change of what the deployment resolves (a secret's new
 *    version, one deleted or detached, the deployment's list) down the session at once; the agent
 *    writes it and answers ACK, or NACK with the reason. The answer is the rollout report.
 * 3. Resync every interval (and on each new session): the daemon answers only what differs from
 *    what the agent says it holds (name, uid, version, digest), so a lost push costs at most one
 *    interval and an unchanged resync costs the daemon no decryption. With --nats-url, a NATS
 *    notice for the deployment's scope triggers a resync too (notice-follower.ts).
 * 4. Never go back: a pushed version not newer than the one held (same uid) is ignored.
 * 5. A deleted secret's files go (mount-files.ts).
 * 6. Tamper repair (mount-files.ts): a change under the agent queues a repair pass here, which
 *    compares everything, contents included. Every full resync checks everything too.
 * 7. A write that fails (a disk error: a mount dir not written, its readers left on the version
 *    before) is NACKed and tried again after a jittered backoff (250 ms doubling to 5 s); the
 *    write that then succeeds is reported (an ACK without nonce). A path refused for safety is not
 *    retried.
 * 8. Reports say what is on disk (mount-files.ts): a version left out or not written yet does
 *    not count as applied, and the problems go with it.
 * 9. Failover: when the session breaks (the daemon died, hung past the keepalive, or stopped),
 *    the agent resyncs at once on a session to the next address of --addr; a round of the list
 *    that reached no daemon waits a jittered 250 ms to 1 s before the next.
 * Writes never overlap: a push that arrives during one is applied by the next.
 */
import { realpathSync } from 'node:fs';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { hostname } from 'node:os';
import { Backoff } from '../../shared/src/backoff.js';
import { NoticeFollower } from './notice-follower.js';
import type { ClientOptions } from '../../shared/src/client.js';
import type { ChangeNotice } from '../../shared/src/subject.js';
import { mountFromMessage, type MountMessage } from '../../shared/src/layout.js';
import { userRecord } from '../../shared/src/user-keys.js';
import type { AgentMetrics } from './agent-metrics.js';
import type { WriterModes } from './atomic-writer.js';
import { expandDaemonAddresses, parseDaemonAddresses } from './daemon-addresses.js';
import type { NatsOptions } from '../../shared/src/nats-options.js';
import { MountFiles, type AgentLog } from './mount-files.js';
import type { HeldSecret, Rendered } from './render.js';
import { AgentSession, type SecretPush, type SessionRequestError } from './session.js';

export { MountWriteError, type AgentLog } from './mount-files.js';

export interface AgentOptions {
  /** `addr` may list several daemons (daemon-addresses.ts). */
  client: ClientOptions;
  bentomlHome: string;
  /** NATS notices as a resync trigger (optional: pushes come on the session). Unset or "none": off; "advertised": the URL the daemon advertises. */
  natsUrl?: string;
  nats?: NatsOptions;
  resyncIntervalMs: number;
  modes: WriterModes;
  agentId?: string;
  /**
   * `once`: says so on its resync, so rollout status lists it as a one-shot run, never as a stale
   * sidecar. `run` and `exec` are sidecars: `exec` keeps its session (and follows changes) for as
   * long as its child runs, and goes silent when the child exits.
   */
  oneShot?: boolean;
  log: AgentLog;
  /** Called after every sync that changed files (exec uses it). */
  onChange?: (rendered: Rendered) => void;
  /** Tamper repair (default on). */
  repair?: boolean;
  /** Told of syncs and writes (agent-metrics.ts). */
  metrics?: AgentMetrics;
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

interface Batch {
  /** Resync with the daemon before writing. */
  resync: boolean;
  /** Write what is held (a push arrived). */
  write: boolean;
  repair?: boolean;
  /** Pushes to answer once written. */
  nonces: string[];
}

export class Agent {
  /** Every call to the daemon goes through one session (agent/src/session.ts). */
  private readonly session: AgentSession;
  readonly home: string;
  readonly agentId: string;
  private deploymentSecrets: string[] = [];
  private held = new Map<string, HeldSecret>();
  /** The digest the daemon sent with each held version (echoed on resync). */
  private digests = new Map<string, string>();
  /** Steps (5), (6), (8): the files. */
  private readonly files: MountFiles;
  /** Step (3), NATS mode (--nats-url). */
  private notices: NoticeFollower | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private pending: Batch = { resync: false, write: false, nonces: [] };
  private stopped = false;
  /** Step (7): the retry of a failed sync, and its backoff (250 ms doubling to 5 s, ±20 %). */
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly syncBackoff = new Backoff({ initialMs: 250, maxMs: 5000, jitter: 0.2 });
  /** Step (9): the wait before resyncing after a break: none for the first, then 250 ms doubling to 900 ms, ±10 % (under 1 s). */
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly reconnectBackoff = new Backoff({ initialMs: 250, maxMs: 900, jitter: 0.1 });
  private brokenRounds = 0;
  /** The last write failed: the next one that succeeds is reported. */
  private lastNack = '';
  /** Something the daemon should hear changed (a repair, problems) without a push to answer. */
  private reportDue = false;
  ready = false;

  constructor(private readonly options: AgentOptions) {
    const addresses = parseDaemonAddresses(options.client.addr);
    this.session = new AgentSession({
      addresses: () => expandDaemonAddresses(addresses),
      client: options.client,
      timeoutMs: options.client.timeoutMs ?? 30_000,
      onPush: (push) => this.onPush(push),
      onBroken: (error) => this.onBroken(error),
      onRefused: (error) => this.options.log.warn({ err: error.message }, 'lockboxd could not serve this deployment; keeping the files as they are'),
    });
    this.home = realpathSync(options.bentomlHome);
    this.agentId = options.agentId ?? `${hostname()}/${process.pid}`;
    this.files = new MountFiles({ home: this.home, modes: options.modes, log: options.log, metrics: options.metrics, onChange: options.onChange, onTampered: () => void this.repair() });
  }

  /** What the last write rendered (exec takes its env). */
  get lastRendered(): Rendered | undefined {
    return this.files.lastRendered;
  }

  /** Problems of the last render (reported to the daemon, never values). */
  get problems(): string[] {
    return this.files.problems;
  }

  /** The daemon address the session uses. */
  get daemonAddress(): string | undefined {
    return this.session.address;
  }

  /** Step (1): one full sync. Throws when the daemon cannot be reached. */
  async syncOnce(): Promise<void> {
    await this.request({ all: true }, true);
    await this.files.settle(); // an init container exits next: every swap must be on disk
  }

  /** Steps (1)-(3). */
  async start(): Promise<void> {
    await this.request({ all: true }, true);
    this.ready = true;
    const natsUrl = this.options.natsUrl;
    if (natsUrl && natsUrl !== 'none') {
      const config = await this.session.config();
      const url = natsUrl === 'advertised' ? config.nats_url : natsUrl;
      if (url) {
        this.notices = new NoticeFollower({ agentId: this.agentId, nats: this.options.nats, log: this.options.log, stopped: () => this.stopped, isNews: (notice) => this.isNews(notice), resync: () => void this.request({ all: true }) });
        this.notices.follow(url, config.subjects ?? []).catch((error: Error) => {
          // Closing the connection as the agent stops may cut a subscription short: not news.
          if (!this.stopped) this.options.log.warn({ err: error.message }, 'NATS mode stopped; pushes on the session and the resync keep files current');
        });
      }
      else this.options.log.warn({}, 'lockboxd advertises no NATS URL: pushes on the session only');
    }
    this.scheduleResync();
    if (this.options.repair !== false) this.files.watchForTampering();
  }

  private scheduleResync(): void {
    clearTimeout(this.resyncTimer);
    if (this.stopped) return;
    this.resyncTimer = setTimeout(() => {
      void this.request({ all: true }).finally(() => this.scheduleResync());
    }, this.options.resyncIntervalMs);
    this.resyncTimer.unref();
  }

  /** Step (9): the session broke; resync on the next address at once (a round that reached none waits first). */
  private onBroken(error: SessionRequestError): void {
    if (this.stopped || !this.ready) return;
    clearTimeout(this.reconnectTimer);
    const delay = this.brokenRounds === 0 ? 0 : this.reconnectBackoff.next();
    this.options.log.warn({ err: error.message, next: this.session.address ?? 'the first address again', retry_ms: delay }, 'session to lockboxd broken; resyncing with the next address');
    this.reconnectTimer = setTimeout(() => {
      this.brokenRounds++;
      void this.request({ all: true });
    }, delay);
  }

  private isNews(notice: ChangeNotice): boolean {
    if (!this.deploymentSecrets.includes(notice.name)) return false;
    const held = this.held.get(notice.name);
    return !(held && held.uid === notice.uid && notice.version <= held.version && notice.operation !== 'delete'); // (4)
  }

  /** Steps (2), (4), (5): takes a push (or a resync's answer) into what is held; the write is queued. */
  private onPush(push: SecretPush): void {
    if (push.deployment) {
      const secrets = push.deployment.secrets ?? [];
      if (this.ready && secrets.join('\0') !== this.deploymentSecrets.join('\0')) this.options.log.info({ secrets }, 'deployment changed: secrets attached or detached');
      this.deploymentSecrets = secrets;
    }
    for (const pushed of push.secrets ?? []) {
      if (!pushed.secret) continue;
      const next = toHeld(pushed.secret as SecretMessage);
      const held = this.held.get(next.name);
      if (held && held.uid === next.uid && next.version <= held.version) continue; // (4)
      this.held.set(next.name, next);
      this.digests.set(next.name, pushed.digest ?? '');
    }
    for (const name of push.removed ?? []) {
      this.held.delete(name);
      this.digests.delete(name);
    }
    if (push.deployment)
      for (const name of [...this.held.keys()])
        if (!this.deploymentSecrets.includes(name)) {
          this.held.delete(name);
          this.digests.delete(name);
        }
    this.queue({ write: true, nonces: push.nonce ? [push.nonce] : [] });
  }

  /**
   * Queues work and starts it; writes never overlap. `all`: resync with the daemon first (its
   * answer is written in the same pass). Resolves when the queue is drained. `throwOnFailure`:
   * for start-up, a failure rejects instead of being retried in the background.
   */
  request(what: { all?: boolean; names?: Iterable<string>; repair?: boolean }, throwOnFailure = false): Promise<void> {
    const names = [...(what.names ?? [])];
    this.queue({ resync: Boolean(what.all) || names.length > 0, repair: what.repair });
    if (!this.syncing && this.hasPending()) this.syncing = this.drain(throwOnFailure);
    return this.syncing ?? Promise.resolve();
  }

  private hasPending(): boolean {
    return this.pending.resync || this.pending.write || this.pending.repair === true;
  }

  private queue(what: Partial<Batch>): void {
    if (what.resync) this.pending.resync = true;
    if (what.write) this.pending.write = true;
    if (what.repair) this.pending.repair = true;
    this.pending.nonces.push(...(what.nonces ?? []));
    if (!this.syncing && this.hasPending() && !what.resync) this.syncing = this.drain(false);
  }

  private async drain(throwOnFailure: boolean): Promise<void> {
    try {
      while (!this.stopped && this.hasPending()) {
        const batch = this.pending;
        this.pending = { resync: false, write: false, nonces: [] };
        try {
          await this.sync(batch);
          this.syncBackoff.reset();
          this.options.metrics?.synced();
        } catch (error) {
          this.options.metrics?.syncFailed();
          if (throwOnFailure) {
            this.pending = { resync: false, write: false, nonces: [] };
            throw error;
          }
          this.queue({ ...batch, nonces: [] });
          // (9) The session broke: onBroken resyncs on the next address, without this backoff.
          if (this.sessionBroken(error)) break;
          // (7) What failed is tried again after a jittered backoff (or sooner, by the next push).
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

  private sessionBroken(error: unknown): boolean {
    const code = (error as SessionRequestError).code;
    return error instanceof Error && error.name === 'SessionRequestError' && (code === GrpcStatus.UNAVAILABLE || code === GrpcStatus.DEADLINE_EXCEEDED || code === GrpcStatus.CANCELLED);
  }

  private heldVersions() {
    return [...this.held.values()].map((s) => ({ name: s.name, uid: s.uid, version: s.version, digest: this.digests.get(s.name) ?? '' }));
  }

  private async sync(batch: Batch): Promise<void> {
    if (batch.resync) {
      // (3) The answer is handed to onPush (which queues a write with its nonce) before this resolves.
      await this.session.resync({
        agent_id: this.agentId,
        held: this.heldVersions(),
        resync_interval_seconds: Math.max(1, Math.round(this.options.resyncIntervalMs / 1000)),
        one_shot: this.options.oneShot === true,
      });
      this.brokenRounds = 0;
      this.reconnectBackoff.reset();
      const answered = this.pending;
      this.pending = { resync: false, write: false, nonces: [] };
      batch.write = true;
      batch.nonces.push(...answered.nonces);
      batch.repair ||= answered.repair;
      if (answered.resync) this.pending.resync = true;
    }
    // A push touches a few secrets: dirs whose version text this agent wrote last are left
    // alone. A full resync looks at every dir on disk too; a repair pass (no write) as well.
    const { news, failure } = await this.files.apply(this.held, !batch.write, batch.write && !batch.resync);
    if (news) this.reportDue = true;
    if (!batch.write) {
      if (failure) throw failure; // reported by the next sync that gets through
      return this.acknowledge([], '');
    }
    if (failure) {
      this.acknowledge(batch.nonces, failure.message); // (7) NACK; the daemon hears of the problem meanwhile
      throw failure;
    }
    if (this.lastNack) this.reportDue = true; // (7) the write that failed went through now
    this.acknowledge(batch.nonces, '');
  }

  /** Steps (2), (8): ACK or NACK each push written, with what is on disk; one report when there is none to answer. */
  private acknowledge(nonces: string[], nackReason: string): void {
    if (nonces.length === 0 && !this.reportDue) return;
    this.reportDue = false;
    this.lastNack = nackReason;
    // What is on disk, not what is held: a version left out or not written yet is not applied
    // (version 0 when none ever was), so `lockbox status` lists the agent with its problems.
    const applied = this.files.appliedVersions(this.held.values());
    for (const nonce of nonces.length ? nonces : ['']) this.session.ack({ nonce, applied, nack_reason: nackReason, problems: this.problems });
  }

  /** Re-applies what is held: every dir that no longer matches is rewritten (through the sync queue). */
  repair(): Promise<void> {
    if (!this.lastRendered || this.stopped) return Promise.resolve();
    this.queue({ repair: true });
    return this.syncing ?? Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.resyncTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.reconnectTimer);
    this.files.close();
    // A sync still in flight is waited for, not rethrown: whoever asked for it has its outcome
    // (a stop after `once` timed out would otherwise end with the raw gRPC error instead).
    await this.syncing?.catch(() => undefined);
    await this.files.settle();
    await this.notices?.close();
    await this.session.close();
  }
}

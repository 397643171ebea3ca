/**
 * Sends outbox rows to NATS, at least once.
 * 1. Wait for a wake-up (a commit, a reconnect) or the poll interval.
 * 2. While connected, read the oldest pending notices in sequence order.
 * 3. Publish each on its subject, then flush: the server has them once the flush's PONG returns.
 * 4. Only then delete the rows. A crash between (3) and (4) resends them: agents ignore a
 *    version they already hold.
 * While NATS is unreachable the client keeps reconnecting and rows wait; a failed round backs off
 * with jitter. stop() cancels every wait. Payloads carry scope, name, uid, version, operation,
 * seq and time, never a value.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from 'nats';
import { natsConnectOptions, type NatsOptions } from '../../../shared/src/nats-options.js';
import { Backoff } from '../../../shared/src/backoff.js';
import type { ChangeNotice } from '../../../shared/src/subject.js';
import { withTimeout } from '../../../shared/src/timeout.js';
import type { Logger } from '../log.js';
import type { Store, StoredNotice } from '../store/store.js';

export interface OutboxPublisherOptions {
  store: Store;
  /** A comma list of URLs; empty: NATS is disabled, notices stay in the outbox. */
  natsUrl: string;
  /** Credentials and TLS for NATS. */
  nats?: NatsOptions;
  log: Logger;
  pollIntervalMs?: number;
  batchSize?: number;
  flushTimeoutMs?: number;
  /** Told the time of each notice sent (the publish lag metric). */
  onPublished?: (noticeTime: string) => void;
}

export function noticePayload(notice: StoredNotice): ChangeNotice {
  return {
    tenant: notice.tenant,
    resource_group: notice.resourceGroup,
    name: notice.name,
    uid: notice.uid,
    version: notice.version,
    operation: notice.operation,
    seq: notice.seq,
    time: notice.time,
  };
}

export class OutboxPublisher {
  private nc: NatsConnection | undefined;
  private connected = false;
  private readonly stopping = new AbortController();
  /** Aborted to end the current wait of step (1) early. */
  private wakeUp = new AbortController();
  private pendingWake = false;
  private loop: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;
  private readonly encoder = new TextEncoder();
  /** Notices published since start. */
  published = 0;

  constructor(private readonly options: OutboxPublisherOptions) {}

  get isConnected(): boolean {
    return this.connected;
  }

  start(): void {
    if (this.options.natsUrl) this.connecting = this.connectForever();
    else this.options.log.warn('NATS is disabled (empty --nats-url): change notices wait in the outbox; agents still get every change pushed on their sessions');
    this.loop = this.run();
  }

  /**
   * Sends a message that goes around the outbox (audit checkpoints, which are also logged):
   * best effort, dropped while NATS is not connected. Returns whether it was handed to NATS.
   */
  publishDirect(subject: string, payload: Uint8Array): boolean {
    if (!this.nc || !this.connected) return false;
    this.nc.publish(subject, payload);
    return true;
  }

  /** Step (1): something may be waiting to be sent. */
  wake(): void {
    this.pendingWake = true;
    this.wakeUp.abort();
  }

  /** Waits `ms`, or less when woken (unless `ignoreWake`) or stopped. */
  private async pause(ms: number, ignoreWake = false): Promise<void> {
    const signals = ignoreWake ? [this.stopping.signal] : [this.stopping.signal, this.wakeUp.signal];
    await sleep(ms, undefined, { signal: AbortSignal.any(signals) }).catch(() => {});
  }

  /** Connects, retrying with jittered backoff until stopped; the client then reconnects by itself. */
  private async connectForever(): Promise<void> {
    const { natsUrl, nats, log } = this.options;
    const backoff = new Backoff({ initialMs: 250, maxMs: 5000, jitter: 0.25 });
    let warned = false;
    while (!this.stopping.signal.aborted) {
      try {
        const nc = await connect({
          ...(await natsConnectOptions(natsUrl, nats ?? {})),
          name: 'lockboxd',
          timeout: 2000,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 100,
          pingInterval: 5000,
          maxPingOut: 2,
        });
        if (this.stopping.signal.aborted) {
          await nc.close();
          return;
        }
        this.nc = nc;
        this.connected = true;
        log.info({ nats: natsUrl }, 'connected to NATS');
        this.wake();
        void this.followStatus(nc);
        return;
      } catch (error) {
        if (!warned) log.warn({ nats: natsUrl, err: (error as Error).message }, 'NATS is not reachable; lockboxd serves anyway, notices wait in the outbox until it is');
        warned = true;
        await backoff.wait(this.stopping.signal);
      }
    }
  }

  private async followStatus(nc: NatsConnection): Promise<void> {
    const { natsUrl, log } = this.options;
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.connected = false;
        log.warn({ nats: natsUrl }, 'NATS connection lost; notices wait in the outbox');
      } else if (status.type === 'reconnect') {
        this.connected = true;
        log.info({ nats: natsUrl }, 'NATS connection back; sending waiting notices');
        this.wake();
      }
    }
  }

  private async run(): Promise<void> {
    const { pollIntervalMs = 1000 } = this.options;
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000, jitter: 0.25 });
    let retryMs = 0;
    while (!this.stopping.signal.aborted) {
      if (retryMs > 0) await this.pause(retryMs, true);
      else if (!this.pendingWake) await this.pause(pollIntervalMs);
      if (this.wakeUp.signal.aborted) this.wakeUp = new AbortController();
      this.pendingWake = false;
      if (this.stopping.signal.aborted) break;
      try {
        await this.publishPending();
        backoff.reset();
        retryMs = 0;
      } catch (error) {
        retryMs = backoff.next();
        this.options.log.warn({ err: (error as Error).message, retry_ms: retryMs }, 'publishing notices failed; will retry');
      }
    }
  }

  /** Steps (2)-(4) until the outbox is empty or NATS is away. Returns how many were sent. */
  async publishPending(): Promise<number> {
    const { store, batchSize = 256, flushTimeoutMs = 2000 } = this.options;
    let sent = 0;
    while (this.connected && this.nc) {
      const notices = await (store.claimNotices ? store.claimNotices(batchSize) : store.pendingNotices(batchSize)); // (2)
      if (notices.length === 0) break;
      const nc = this.nc;
      for (const notice of notices) nc.publish(notice.subject, this.encoder.encode(JSON.stringify(noticePayload(notice)))); // (3)
      await withTimeout(nc.flush(), flushTimeoutMs, 'NATS flush timed out');
      for (const notice of notices) this.options.onPublished?.(notice.time);
      await store.deleteNotices(notices.map((n) => n.seq)); // (4)
      sent += notices.length;
      this.published += notices.length;
      if (notices.length < batchSize) break;
    }
    return sent;
  }

  /** Sends what is pending (bounded by `timeoutMs`), then closes the connection. */
  async stop(timeoutMs = 2000): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await this.connecting;
    if (this.nc && this.connected) {
      try {
        await withTimeout(this.publishPending(), timeoutMs, 'flushing the outbox timed out');
      } catch (error) {
        this.options.log.warn({ err: (error as Error).message }, 'some notices stay in the outbox until the next start');
      }
    }
    await this.nc?.close().catch(() => {});
  }
}

/**
 * Other replicas' commits, heard on NATS: the daemon subscribes to `lockbox.v1.changes.>` and
 * `lockbox.v1.deployments.>` and announces each notice on the change feed, so the agents whose
 * sessions it holds get a change made through another replica. (Its own notices come back here
 * too; the session registry treats a version it already sent as a no-op.)
 * 1. Connect, retrying with jittered backoff until stopped; the client reconnects by itself.
 * 2. A malformed notice is logged by subject and dropped (never its payload).
 * 3. On reconnect, notices sent meanwhile are lost to a core NATS subscriber: announce
 *    `{ kind: 'all' }` so every session is compared again (by version, decrypting only what
 *    differs), and reload the keyring (4).
 * 4. A keyring notice (KEYRING_SUBJECT: another replica added a keyring key) calls `onKeyring`,
 *    which reloads the keyring from the database (service-keys.ts, takeUp).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from 'nats';
import { natsConnectOptions, type NatsOptions } from '../../../shared/src/nats-options.js';
import { CHANGES_PREFIX, DEPLOYMENTS_PREFIX, KEYRING_SUBJECT, type ChangeNotice } from '../../../shared/src/subject.js';
import type { Logger } from '../log.js';
import type { ChangeFeed } from './change-feed.js';

export class ReplicaNotices {
  private nc: NatsConnection | undefined;
  private readonly stopping = new AbortController();

  constructor(
    private readonly natsUrl: string,
    private readonly feed: ChangeFeed,
    private readonly log: Logger,
    private readonly nats: NatsOptions = {},
    private readonly onKeyring: () => void = () => {},
  ) {}

  start(): void {
    if (this.natsUrl) void this.run();
  }

  private async run(): Promise<void> {
    let delay = 250;
    while (!this.stopping.signal.aborted) { // (1)
      try {
        const nc = await connect({ ...(await natsConnectOptions(this.natsUrl, this.nats)), name: 'lockboxd replica notices', timeout: 2000, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, reconnectJitter: 100, pingInterval: 5000, maxPingOut: 2 });
        if (this.stopping.signal.aborted) return void (await nc.close());
        this.nc = nc;
        break;
      } catch {
        await sleep(Math.round(delay * (0.75 + Math.random() * 0.5)), undefined, { signal: this.stopping.signal }).catch(() => {});
        delay = Math.min(delay * 2, 5000);
      }
    }
    const nc = this.nc;
    if (!nc) return;
    for (const [prefix, kind] of [[CHANGES_PREFIX, 'secret'], [DEPLOYMENTS_PREFIX, 'deployment']] as const) {
      nc.subscribe(`${prefix}.>`, {
        callback: (error, message) => {
          if (error) return;
          let notice: ChangeNotice;
          try {
            notice = JSON.parse(message.string()) as ChangeNotice;
            if (typeof notice.tenant !== 'string' || typeof notice.resource_group !== 'string' || typeof notice.name !== 'string' || !Number.isSafeInteger(notice.version))
              throw new Error('malformed');
          } catch {
            return this.log.warn({ subject: message.subject }, 'ignored a malformed change notice'); // (2)
          }
          this.feed.announce({ kind, tenant: notice.tenant, resourceGroup: notice.resource_group, name: notice.name, version: notice.version, origin: 'replica' });
        },
      });
    }
    nc.subscribe(KEYRING_SUBJECT, { callback: (error) => error || this.onKeyring() }); // (4)
    await nc.flush().catch(() => {});
    this.log.info({ nats: this.natsUrl }, 'following other replicas\' changes');
    this.feed.announce({ kind: 'all', origin: 'replica' }); // changes before the subscription
    for await (const status of nc.status()) {
      if (status.type === 'reconnect') {
        this.feed.announce({ kind: 'all', origin: 'replica' }); // (3)
        this.onKeyring();
      }
    }
  }

  /** Stops connecting and closes the connection (the status loop ends with it). */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.nc?.close().catch(() => {});
  }
}

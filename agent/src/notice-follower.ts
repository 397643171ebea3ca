/**
 * The agent's optional NATS mode (--nats-url; agent.ts step 3): pushes come on the session
 * anyway, and a notice only asks for a resync, which the daemon answers with what differs.
 * 1. nats is loaded here, once the agent is ready: start-up needs only gRPC, and `once` never
 *    follows. Connecting is retried with a backoff (250 ms doubling to 5 s) until the agent stops;
 *    meanwhile pushes and the interval resync keep the files current.
 * 2. One subscription per subject the daemon advertises, by callback (no queue or promise per
 *    message). A deployment notice always asks for a resync; a secret notice only when it is news
 *    (the caller's isNews: a secret the deployment lists, newer than the version held).
 * 3. Once subscribed, and whenever NATS comes back, a resync: a notice may have been missed.
 * A malformed notice is logged by subject and ignored; the URL is logged without credentials.
 */
import type { NatsConnection, Subscription } from 'nats';
import { Backoff } from '../../shared/src/backoff.js';
import type { NatsOptions } from '../../shared/src/nats-options.js';
import { DEPLOYMENTS_PREFIX, type ChangeNotice } from '../../shared/src/subject.js';
import type { AgentLog } from './mount-files.js';

export interface NoticeFollowerOptions {
  agentId: string;
  nats?: NatsOptions;
  log: AgentLog;
  /** Whether the agent has stopped (connecting gives up). */
  stopped: () => boolean;
  /** Whether a secret notice names something newer than what is held. */
  isNews: (notice: ChangeNotice) => boolean;
  resync: () => void;
}

/** A NATS URL as it may be logged: without user, password or token. */
const redacted = (url: string) => url.replace(/\/\/[^@/]*@/, '//***@');

export class NoticeFollower {
  private nc: NatsConnection | undefined;
  private readonly subscriptions: Subscription[] = [];

  constructor(private readonly options: NoticeFollowerOptions) {}

  async follow(url: string, subjects: string[]): Promise<void> {
    const { log, stopped, resync } = this.options;
    const { connect } = await import('nats'); // (1)
    const { natsConnectOptions } = await import('../../shared/src/nats-options.js');
    for (const backoff = new Backoff({ initialMs: 250, maxMs: 5000 }); !stopped(); ) {
      try {
        this.nc = await connect({ ...(await natsConnectOptions(url, this.options.nats ?? {})), name: `lockbox-agent ${this.options.agentId}` });
        break;
      } catch (error) {
        log.warn({ nats: redacted(url), err: (error as Error).message }, 'NATS not reachable; pushes and resync keep files current meanwhile');
        await backoff.wait();
      }
    }
    const nc = this.nc;
    if (!nc || stopped()) return void nc?.close();
    for (const subject of subjects) {
      const sub = nc.subscribe(subject, { // (2)
        callback: (error, message) => {
          if (error) return log.warn({ subject, err: error.message }, 'subscription error; resync keeps files current');
          try {
            const notice = JSON.parse(message.string()) as ChangeNotice;
            if (message.subject.startsWith(`${DEPLOYMENTS_PREFIX}.`) || this.options.isNews(notice)) resync();
          } catch {
            log.warn({ subject: message.subject }, 'ignored a malformed notice');
          }
        },
      });
      this.subscriptions.push(sub);
    }
    await nc.flush();
    log.info({ nats: redacted(url) }, 'following change notices');
    resync(); // (3)
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'reconnect') {
          log.info({}, 'NATS back: resyncing');
          resync();
        }
      }
    })();
  }

  /** Unsubscribes and closes the connection (the agent stopped). */
  async close(): Promise<void> {
    for (const sub of this.subscriptions) sub.unsubscribe();
    await this.nc?.close().catch(() => {});
  }
}

/**
 * The daemon's change feed: every committed change a push to agents may depend on, as it
 * happens. Two sources feed it:
 * 1. this daemon's own commits, straight from the commit path (`feedFromStore`): announced when
 *    the store's commit resolves, before any NATS round trip, so a lone daemon without NATS
 *    still pushes at once;
 * 2. other replicas' commits, from their NATS notices (replica-notices.ts), and a `{ kind: 'all' }`
 *    when NATS comes back (notices sent while it was away are lost to core NATS subscribers).
 * A change may arrive twice (its own commit, then its own NOTICE over NATS): listeners compare
 * versions, so a repeat is a no-op.
 */
import type { CommitOutcome, DeploymentChange, Store } from '../store/store.js';

export type FeedChange =
  | { kind: 'secret' | 'deployment'; tenant: string; resourceGroup: string; name: string; version: number; origin: 'local' | 'replica' }
  /** Anything may have changed (NATS came back): every session is compared again. */
  | { kind: 'all'; origin: 'replica' };

export type FeedListener = (change: FeedChange) => void;

export class ChangeFeed {
  private readonly listeners = new Set<FeedListener>();
  /** Changes announced since start, for tests and metrics. */
  announced = 0;

  /** Returns the function that stops listening. */
  listen(listener: FeedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  announce(change: FeedChange): void {
    this.announced++;
    for (const listener of this.listeners) listener(change);
  }
}

/**
 * Step (1): wraps `store.commit` and `store.writeDeployment` of this store object so that each
 * change that committed is announced on `feed` when the call resolves. Failed changes (a savepoint
 * rolled back) announce nothing. The store keeps its class; only the instance's two methods are
 * replaced, so every caller (services, batch, restore) goes through the feed without knowing it.
 */
export function feedFromStore(store: Store, feed: ChangeFeed): void {
  const commit = store.commit.bind(store);
  store.commit = async (...args: Parameters<Store['commit']>): Promise<CommitOutcome[]> => {
    const outcomes = await commit(...args);
    args[0].forEach((change, i) => {
      if (!outcomes[i]?.ok) return;
      const { tenant, resourceGroup, name, version } = change.notice;
      feed.announce({ kind: 'secret', tenant, resourceGroup, name, version, origin: 'local' });
    });
    return outcomes;
  };
  const writeDeployment = store.writeDeployment.bind(store);
  store.writeDeployment = async (...args: Parameters<Store['writeDeployment']>): Promise<void> => {
    await writeDeployment(...args);
    const change: DeploymentChange = args[0];
    const { tenant, resourceGroup, name, version } = change.record;
    feed.announce({ kind: 'deployment', tenant, resourceGroup, name, version, origin: 'local' });
  };
}

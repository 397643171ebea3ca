/**
 * Rollout convergence (issue 13 item 3): how long from a commit until every agent session it was
 * pushed to on this daemon has ACKed it (`lockbox_rollout_convergence_seconds`), and how many
 * rollouts are still waiting (`lockbox_rollouts_pending`, by state waiting or nacked).
 * 1. A rollout is one version of one secret (uid, version) on this daemon, started at the
 *    version's commit time. When a change pushes that version to a session, the session joins
 *    the rollout (resync answers do not: an agent that connects late is not a rollout).
 * 2. An ACK whose applied list holds the secret at that version or later (same uid) takes the
 *    session out of the rollout, and out of older ones of the same secret it still waited for. A
 *    NACK marks what the session still waits for as nacked. A session that closes leaves its
 *    rollouts without answering.
 * 3. A rollout with no session left waiting is over: observed (commit → last ACK) when at least
 *    one session ACKed it, dropped otherwise. A session waits for at most MAX_WAITING versions of
 *    a name; the oldest is left past that, so an agent that never ACKs holds little memory.
 * Every step is O(1) per session and name, so ACK handling stays flat at 10,000 sessions.
 */
import type { SecretHead } from '../store/store.js';

const MAX_WAITING = 8;

interface Rollout {
  key: string;
  committedAt: number;
  waiting: number;
  acked: number;
  nacked: boolean;
}

interface Waited {
  uid: string;
  version: number;
  rollout: Rollout;
}

/** One session's side: name → the versions it was pushed and has not ACKed yet. */
export type AwaitedAcks = Map<string, Waited[]>;

export class RolloutTracker {
  private readonly rollouts = new Map<string, Rollout>();

  constructor(private readonly onConverged: (seconds: number) => void) {}

  /** Step (1). */
  pushed(awaited: AwaitedAcks, heads: SecretHead[]): void {
    for (const head of heads) {
      const key = `${head.uid}/${head.version}`;
      let rollout = this.rollouts.get(key);
      if (!rollout) {
        const committedAt = Date.parse(head.createTime);
        rollout = { key, committedAt: Number.isNaN(committedAt) ? Date.now() : committedAt, waiting: 0, acked: 0, nacked: false };
        this.rollouts.set(key, rollout);
      }
      let list = awaited.get(head.name);
      if (!list) awaited.set(head.name, (list = []));
      if (list.some((w) => w.rollout === rollout)) continue;
      rollout.waiting++;
      list.push({ uid: head.uid, version: head.version, rollout });
      if (list.length > MAX_WAITING) this.leave(list.shift()!.rollout, false); // (3)
    }
  }

  /** Step (2). */
  acked(awaited: AwaitedAcks, applied: Array<{ name?: string; uid?: string; version?: number }>, nacked: boolean): void {
    for (const a of applied) {
      const list = awaited.get(a.name ?? '');
      if (!list) continue;
      const kept = list.filter((w) => {
        if (w.uid !== a.uid || w.version > (a.version ?? 0)) return true;
        this.leave(w.rollout, true);
        return false;
      });
      if (kept.length) awaited.set(a.name!, kept);
      else awaited.delete(a.name!);
    }
    if (nacked) for (const list of awaited.values()) for (const w of list) w.rollout.nacked = true;
  }

  /** Step (2): the session is gone. */
  closed(awaited: AwaitedAcks): void {
    for (const list of awaited.values()) for (const w of list) this.leave(w.rollout, false);
    awaited.clear();
  }

  /** Rollouts still waiting for a session, by whether one of those NACKed. */
  pending(): { waiting: number; nacked: number } {
    const counts = { waiting: 0, nacked: 0 };
    for (const r of this.rollouts.values()) counts[r.nacked ? 'nacked' : 'waiting']++;
    return counts;
  }

  private leave(rollout: Rollout, acked: boolean): void {
    rollout.waiting--;
    if (acked) rollout.acked++;
    if (rollout.waiting > 0) return;
    this.rollouts.delete(rollout.key); // (3)
    if (rollout.acked > 0) this.onConverged(Math.max(0, (Date.now() - rollout.committedAt) / 1000));
  }
}

/**
 * Backoff with jitter for every retry loop (the agent's sync and NATS connect, lockboxd's outbox
 * publisher and its NATS connect). The n-th delay after n failures in a row is
 * `min(maxMs, initialMs × factor^n)`, then jittered by ±`jitter` (a fraction), so many clients
 * that failed together do not retry together. `reset()` after a success starts again from
 * `initialMs`. `wait(signal)` sleeps the next delay and ends early, without throwing, when the
 * signal aborts (a stop), as the vault agent's sinks do.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /** ± this fraction of the delay, uniformly (default 0: none). */
  jitter?: number;
  /** For tests: a source of numbers in [0, 1) (default Math.random). */
  random?: () => number;
}

export class Backoff {
  private failed = 0;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    this.factor = options.factor ?? 2;
    this.jitter = options.jitter ?? 0;
    this.random = options.random ?? Math.random;
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs) || !(this.factor >= 1) || !(this.jitter >= 0 && this.jitter < 1))
      throw new RangeError('backoff: needs 0 < initialMs <= maxMs, factor >= 1 and 0 <= jitter < 1');
  }

  /** Failures counted since the last reset. */
  get failures(): number {
    return this.failed;
  }

  /** The delay before the next attempt (ms, whole); counts one more failure. */
  next(): number {
    const base = Math.min(this.options.maxMs, this.options.initialMs * this.factor ** this.failed);
    this.failed++;
    return Math.round(base * (1 - this.jitter + this.random() * 2 * this.jitter));
  }

  /** After a success: the next delay is `initialMs` again. */
  reset(): void {
    this.failed = 0;
  }

  /** Sleeps the next delay; resolves false at once (or as soon as) `signal` aborts, else true. */
  async wait(signal?: AbortSignal): Promise<boolean> {
    const ms = this.next();
    if (signal?.aborted) return false;
    try {
      await sleep(ms, undefined, signal ? { signal } : undefined);
      return true;
    } catch {
      return false;
    }
  }
}

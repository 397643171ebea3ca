/**
 * lockboxd's Prometheus metrics (served on `/metrics`, see --metrics-addr). Every family is
 * `lockbox_…` with base units; labels take few values (transport, method, code, state), never a
 * secret name, tenant, token or value.
 * - calls: every gRPC call, REST request and agent-session message, counted by method and code,
 *   timed by method (observed where each call is logged, boundary.ts logCall);
 * - the store: commit latency and batch size (jobs of a SQLite group commit, changes of a
 *   PostgreSQL commit), audit write lag (an entry's time to its place in the chain);
 * - delivery: outbox depth (read at scrape time), publish lag (commit time to NATS), agent
 *   sessions connected, agents by state (current, stale: silent three resync intervals, or
 *   one_shot: `lockbox-agent once` runs);
 * - rollouts: convergence, from a commit to the last ACK of the sessions it was pushed to on this
 *   replica, and the rollouts still waiting (or NACKed), from delivery/rollout-tracker.ts.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createMetricsRegistry, latencyBuckets } from '../../shared/src/metrics.js';
import type { Store, StoreObserver } from './store/store.js';

export type Transport = 'grpc' | 'http' | 'agent-session';

export class DaemonMetrics {
  readonly registry: Registry = createMetricsRegistry('lockboxd');
  private readonly requests = new Counter({
    name: 'lockbox_requests_total',
    help: 'Calls answered, by transport, method (gRPC method, or HTTP method and route) and code (gRPC status name or HTTP status)',
    labelNames: ['transport', 'method', 'code'],
    registers: [this.registry],
  });
  private readonly requestSeconds = new Histogram({
    name: 'lockbox_request_duration_seconds',
    help: 'Time to answer a call',
    labelNames: ['transport', 'method'],
    buckets: latencyBuckets,
    registers: [this.registry],
  });
  private readonly commitSeconds = new Histogram({ name: 'lockbox_store_commit_duration_seconds', help: 'Time of one store transaction, fsync included', buckets: latencyBuckets, registers: [this.registry] });
  private readonly commitSize = new Histogram({
    name: 'lockbox_store_commit_batch_size',
    help: 'Writes carried by one store transaction (group commit)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    registers: [this.registry],
  });
  private readonly auditLag = new Histogram({ name: 'lockbox_audit_write_lag_seconds', help: 'From the time an audit entry records to its place in the hash chain', buckets: latencyBuckets, registers: [this.registry] });
  private readonly publishLag = new Histogram({ name: 'lockbox_outbox_publish_lag_seconds', help: 'From a change notice entering the outbox to its publication on NATS', buckets: latencyBuckets, registers: [this.registry] });
  private readonly convergence = new Histogram({
    name: 'lockbox_rollout_convergence_seconds',
    help: 'From a secret version\'s commit to the ACK of the last agent session it was pushed to on this replica',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  /** What the store reports (its options' `observer`). */
  readonly store: StoreObserver = {
    committed: (seconds, size) => {
      this.commitSeconds.observe(seconds);
      this.commitSize.observe(size);
    },
    auditWritten: (lagSeconds) => this.auditLag.observe(Math.max(0, lagSeconds)),
  };

  /** Each (transport, method, code)'s counter and timer, looked up once: every agent ACK passes here, so no label hashing per call. */
  private readonly callSeries = new Map<string, { count: { inc(): void }; time: { observe(value: number): void } }>();

  call(transport: Transport, method: string, code: string | number, seconds: number): void {
    const key = `${transport}\0${method}\0${code}`;
    let series = this.callSeries.get(key);
    if (!series) {
      series = { count: this.requests.labels({ transport, method, code: String(code) }), time: this.requestSeconds.labels({ transport, method }) };
      this.callSeries.set(key, series);
    }
    series.count.inc();
    series.time.observe(seconds);
  }

  published(noticeTime: string): void {
    const lag = (Date.now() - Date.parse(noticeTime)) / 1000;
    if (Number.isFinite(lag)) this.publishLag.observe(Math.max(0, lag));
  }

  /** A rollout every agent session ACKed (delivery/rollout-tracker.ts). */
  rolloutConverged(seconds: number): void {
    this.convergence.observe(seconds);
  }

  /** The gauges read at scrape time, once the parts they read exist. */
  watch(parts: { store: Store; sessions: () => number; rollouts: () => { waiting: number; nacked: number } }): void {
    new Gauge({
      name: 'lockbox_rollouts_pending',
      help: 'Secret versions pushed on this replica that some agent session has not ACKed yet, by state: waiting, or nacked (an agent NACKed it)',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        for (const [state, n] of Object.entries(parts.rollouts())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'lockbox_outbox_depth',
      help: 'Change notices waiting in the outbox',
      registers: [this.registry],
      async collect() {
        this.set(await parts.store.countNotices());
      },
    });
    new Gauge({
      name: 'lockbox_agent_sessions',
      help: 'Agent sessions (AgentService.Session streams) open on this replica',
      registers: [this.registry],
      collect() {
        this.set(parts.sessions());
      },
    });
    new Gauge({
      name: 'lockbox_agents',
      help: 'Agents that reported, by state: current, stale (silent three resync intervals), or one_shot (lockbox-agent once runs, kept until --agent-retention)',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        const now = Date.now();
        const counts = { current: 0, stale: 0, one_shot: 0 };
        for (const a of await parts.store.agentHeartbeats())
          counts[a.resyncIntervalSeconds === 0 ? 'one_shot' : now - Date.parse(a.lastSeenTime) > 3 * a.resyncIntervalSeconds * 1000 ? 'stale' : 'current']++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
  }
}

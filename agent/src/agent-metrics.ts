/**
 * lockbox-agent's metrics, served on its health address (`/metrics`): syncs and their failures,
 * writes per outcome, when each mount last got a new version on disk, and the seconds since the
 * last good sync (what an alert on a stuck sidecar watches). Mount labels are the mount's path
 * under $BENTOML_HOME, as the deployment names it: few values, never a value or a secret's key.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { createMetricsRegistry } from '../../shared/src/metrics.js';

export class AgentMetrics {
  readonly registry: Registry = createMetricsRegistry('lockbox-agent');
  private lastGoodSync = 0;
  private readonly syncs = new Counter({ name: 'lockbox_agent_syncs_total', help: 'Syncs with lockboxd that ended with every mount written', registers: [this.registry] });
  private readonly syncFailures = new Counter({ name: 'lockbox_agent_sync_failures_total', help: 'Syncs that failed (lockboxd away, a disk error) and were retried', registers: [this.registry] });
  private readonly writes = new Counter({
    name: 'lockbox_agent_writes_total',
    help: 'Mount dirs written: a new version (written), files put back after tampering (repaired), or a write that failed (failed)',
    labelNames: ['result'],
    registers: [this.registry],
  });
  private readonly lastApplied = new Gauge({
    name: 'lockbox_agent_last_applied_timestamp_seconds',
    help: 'When a new version of the mount last landed on disk (Unix time)',
    labelNames: ['mount'],
    registers: [this.registry],
  });

  constructor() {
    const metrics = this;
    new Gauge({
      name: 'lockbox_agent_seconds_since_last_sync',
      help: 'Seconds since the last sync that succeeded (-1 before the first)',
      registers: [this.registry],
      collect() {
        this.set(metrics.lastGoodSync ? (Date.now() - metrics.lastGoodSync) / 1000 : -1);
      },
    });
    for (const result of ['written', 'repaired', 'failed']) this.writes.inc({ result }, 0);
  }

  synced(): void {
    this.syncs.inc();
    this.lastGoodSync = Date.now();
  }

  syncFailed(): void {
    this.syncFailures.inc();
  }

  wrote(mount: string, repaired: boolean): void {
    this.writes.inc({ result: repaired ? 'repaired' : 'written' });
    if (!repaired) this.lastApplied.set({ mount }, Date.now() / 1000);
  }

  writeFailed(): void {
    this.writes.inc({ result: 'failed' });
  }
}

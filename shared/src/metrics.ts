/**
 * Prometheus metrics, what lockboxd and lockbox-agent share: one registry per program (never the
 * global one: tests run several daemons in one process), node's process metrics, and
 * `lockbox_build_info{program,version,node}` = 1. Names follow the Prometheus guide
 * (`lockbox_<what>_<unit>`, `_total` for counters, base units); labels take few values: never a
 * secret name, a token or a path under $BENTOML_HOME beyond a mount's own path.
 */
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { lockboxVersion } from './version.js';

export function createMetricsRegistry(program: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({ name: 'lockbox_build_info', help: 'Always 1; the labels say what is running', labelNames: ['program', 'version', 'node'], registers: [registry] })
    .set({ program, version: lockboxVersion, node: process.version }, 1);
  return registry;
}

/** The scrape answer: the text exposition format. */
export async function scrape(registry: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/** Latency buckets (seconds) for calls and commits: 0.5 ms to 10 s. */
export const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

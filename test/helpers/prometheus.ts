/**
 * Scrapes a /metrics endpoint and parses it with an independent parser (the npm
 * parse-prometheus-text-format package, not prom-client), so a malformed exposition fails.
 */
import { createRequire } from 'node:module';

interface ParsedFamily {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: Array<{ value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }>;
}

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => ParsedFamily[];

export interface Scrape {
  text: string;
  families: Map<string, ParsedFamily>;
  /** The value of the sample of `name` whose labels include `labels` (an unlabelled histogram: its count); 0 when absent. */
  value(name: string, labels?: Record<string, string>): number;
  /**
   * A labelled histogram's `_count`, read from the text: the parser merges the series of a
   * histogram with labels into one and drops their labels and counts.
   */
  histogramCount(name: string, labels: string): number;
}

export async function scrapeMetrics(url: string): Promise<Scrape> {
  const response = await fetch(url);
  if (response.status !== 200) throw new Error(`GET ${url}: ${response.status}`);
  if (!/^text\/plain; version=0\.0\.4/.test(response.headers.get('content-type') ?? '')) throw new Error(`GET ${url}: content-type ${response.headers.get('content-type')}`);
  const text = await response.text();
  const families = new Map(parse(text).map((f) => [f.name, f]));
  return {
    text,
    families,
    value(name, labels = {}) {
      const sample = families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
      return Number(sample?.count ?? sample?.value ?? 0);
    },
    histogramCount(name, labels) {
      const line = text.split('\n').find((l) => l.startsWith(`${name}_count{${labels}} `));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
    },
  };
}

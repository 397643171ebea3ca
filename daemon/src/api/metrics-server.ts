/**
 * `/metrics` on an address of its own (--metrics-addr host:port), for a scrape network apart from
 * the API's. Plain HTTP, no token: it serves counts and durations, never a name or a value.
 * Anything but GET /metrics is 404.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { scrape } from '../../../shared/src/metrics.js';
import { parseHostPort } from '../../../shared/src/settings.js';

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

export async function serveMetrics(addr: string, registry: Registry): Promise<MetricsServer> {
  const { host, port } = parseHostPort(addr, '--metrics-addr');
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    scrape(registry).then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`--metrics-addr: cannot listen on ${addr}: ${error.code ?? error.message}`)));
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * A TCP proxy on a free loopback port in front of a real server, which a test can cut (every
 * connection dropped and new ones refused) and mend: a database that becomes unreachable
 * without stopping the machine's own server.
 */
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Drop every open connection; refuse new ones until mend(). */
  cut(): void;
  /** Keep every connection open but forward nothing, and hold new ones: a hung server (SIGSTOP). */
  stall(): void;
  /** After stall(): forward again on the held connections, and connect the held new ones (SIGCONT). */
  unstall(): void;
  mend(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const pairs = new Map<Socket, Socket>();
  const held = new Set<Socket>();
  let cut = false;
  let stalled = false;
  const forward = (client: Socket) => {
    const upstream = connect(target.port, target.host);
    pairs.set(client, upstream);
    upstream.on('close', () => pairs.delete(client));
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  };
  const server = createServer((client) => {
    if (cut) return client.destroy();
    if (stalled) {
      open.add(client);
      held.add(client);
      client.on('close', () => (open.delete(client), held.delete(client))).on('error', () => {});
      return client.pause();
    }
    forward(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    cut() {
      cut = true;
      for (const s of open) s.destroy();
    },
    stall() {
      stalled = true;
      for (const s of open) {
        s.unpipe();
        s.pause();
      }
    },
    unstall() {
      stalled = false;
      for (const [client, upstream] of pairs) {
        client.pipe(upstream).pipe(client);
        client.resume();
        upstream.resume();
      }
      for (const client of held) {
        held.delete(client);
        open.delete(client);
        client.resume();
        forward(client);
      }
    },
    mend() {
      cut = false;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A fresh schema reached through a proxy the test can cut or stall; the proxy closes at teardown. */
export async function schemaBehindProxy(t: { teardown(fn: () => unknown): void }, schemaUrl: string): Promise<{ url: string; proxy: TcpProxy }> {
  const url = new URL(schemaUrl);
  const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
  t.teardown(() => proxy.close());
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  return { url: url.toString(), proxy };
}

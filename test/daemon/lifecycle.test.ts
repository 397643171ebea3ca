/**
 * The daemon's life-cycle paths that ordinary calls never take: a stop whose calls outlast the
 * drain timeout, and /readyz when the database is out of reach.
 */
import t from 'tap';
import { connect as http2Connect } from 'node:http2';
import { startTestDaemon } from '../helpers/daemon.js';
import { freshSchema } from '../helpers/postgres.js';
import { schemaBehindProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/wait.js';

t.test('a call still open after the drain timeout is cancelled, and the stop completes', async (t) => {
  const d = await startTestDaemon(t, { drainTimeoutMs: 300 });
  // A gRPC call whose request never finishes: headers sent, the message never. Only the forced
  // shutdown can end it.
  const session = http2Connect(`http://${d.daemon.address}`);
  session.on('error', () => undefined); // the forced shutdown resets the connection
  t.teardown(() => session.destroy());
  const stream = session.request({
    ':method': 'POST',
    ':path': '/lockbox.v1.SecretsService/ListSecrets',
    'content-type': 'application/grpc',
    te: 'trailers',
    authorization: `Bearer ${d.adminToken}`,
  });
  stream.on('error', () => undefined);
  const streamClosed = new Promise<void>((resolve) => stream.on('close', resolve));
  await new Promise<void>((resolve) => stream.on('ready', resolve));
  // The daemon answers a PING after the frames before it: once it does, it holds the call.
  await new Promise<void>((resolve, reject) => session.ping((error) => (error ? reject(error) : resolve())));

  let stopped = false;
  const stop = d.daemon.stop().then(() => (stopped = true));
  await until('the drain timeout is logged', () => d.logs.some((l) => l.includes('calls still running after the drain timeout')));
  await stop;
  t.ok(stopped, 'the stop completed although the call never did');
  await streamClosed;
  t.pass('the open call was ended by the daemon');
  t.ok(d.logs.some((l) => l.includes('lockboxd stopped')), 'the rest of the stop ran (outbox, reads, reports, store)');
});

t.test('/readyz answers 503 while the database is out of reach, and 200 again when it is back', async (t) => {
  const { url, proxy } = await schemaBehindProxy(t, await freshSchema(t));
  const d = await startTestDaemon(t, { databaseUrl: url });
  const readyz = async () => {
    const res = await fetch(`${d.daemon.httpUrl}/readyz`);
    return { status: res.status, body: (await res.json()) as { status: string; database: string } };
  };
  t.match(await readyz(), { status: 200, body: { status: 'ready', database: 'reachable' } });

  proxy.cut();
  const down = await readyz();
  t.match(down, { status: 503, body: { status: 'not ready', database: 'unreachable' } }, 'not ready: a replica without its database cannot serve');
  const health = await fetch(`${d.daemon.httpUrl}/healthz`);
  t.equal(health.status, 200, 'alive all the same: a restart would not bring the database back');

  proxy.mend();
  await until('ready again once the database answers', async () => (await readyz()).status === 200);
  t.match(await readyz(), { body: { database: 'reachable' } });
});

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { connect } from 'nats';
import { loadServices } from '../../shared/src/proto.js';
import { tempDir } from '../helpers/daemon.js';
import { startNats } from '../helpers/nats.js';
import { spawnDaemon } from '../helpers/spawn.js';

const services = loadServices();

function client(addr: string, token: string) {
  const c = new services.SecretsService(addr, grpc.credentials.createInsecure());
  const call = (method: string, request: object) =>
    new Promise<any>((resolve, reject) => {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${token}`);
      (c as any)[method](request, md, { deadline: Date.now() + 10_000 }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r)));
    });
  return { call, close: () => c.close() };
}

t.test('SIGKILL in a write loop loses no acknowledged write, and their notices are sent after restart', async (t) => {
  const dataDir = tempDir(t);
  const first = await spawnDaemon(['--data-dir', dataDir, '--grpc-addr', '127.0.0.1:0', '--nats-url', 'none']);
  t.teardown(() => first.child.kill('SIGKILL'));
  const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  const c1 = client(first.addr, token);
  await c1.call('CreateSecret', { secret: { name: 'counter', data: { N: Buffer.from('0') } } });

  const acked = new Map<string, string>();
  let counterAcked = 1;
  let stop = false;
  let killed = false;
  const refusedBeforeKill: string[] = [];
  let n = 0;
  const worker = async (w: number) => {
    while (!stop) {
      const i = n++;
      try {
        if (i % 4 === 0) {
          const r = await c1.call('UpdateSecret', { name: 'counter', set: { N: Buffer.from(String(i)) } });
          counterAcked = Math.max(counterAcked, r.version);
        } else {
          const name = `k-${w}-${i}`;
          const value = `value-${i}-${'x'.repeat(i % 50)}`;
          await c1.call('CreateSecret', { secret: { name, data: { V: Buffer.from(value) } } });
          acked.set(name, value);
        }
      } catch (err) {
        // After the kill a call in flight fails: it was not acknowledged. Before it, any failure
        // is a fault of the daemon, recorded and asserted below.
        if (!killed) refusedBeforeKill.push(`${(err as grpc.ServiceError).code}: ${(err as Error).message}`);
        return;
      }
    }
  };
  const workers = Array.from({ length: 64 }, (_, w) => worker(w));
  while (acked.size < 400) await sleep(5);
  killed = true;
  first.child.kill('SIGKILL');
  t.equal(await first.exited, 'SIGKILL');
  stop = true;
  await Promise.all(workers);
  c1.close();
  t.ok(acked.size >= 400, `${acked.size} creates acknowledged before the kill`);
  t.same(refusedBeforeKill, [], 'no call failed before the kill');

  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const announced = new Set<string>();
  const sub = nc.subscribe('lockbox.v1.changes.>');
  void (async () => {
    for await (const m of sub) announced.add(`${(JSON.parse(m.string()) as { name: string }).name}`);
  })();
  await nc.flush();

  const second = await spawnDaemon(['--data-dir', dataDir, '--grpc-addr', '127.0.0.1:0', '--nats-url', nats.url]);
  t.teardown(() => second.child.kill('SIGKILL'));
  const c2 = client(second.addr, token);
  t.teardown(() => c2.close());
  let missing = 0;
  let wrong = 0;
  for (const [name, value] of acked) {
    try {
      const s = await c2.call('GetSecret', { name, include_values: true });
      if (Buffer.from(s.data.V).toString() !== value) wrong++;
    } catch {
      missing++;
    }
  }
  t.equal(missing, 0, 'every acknowledged create is there');
  t.equal(wrong, 0, 'with its value');
  const counter = await c2.call('GetSecret', { name: 'counter' });
  t.ok(counter.version >= counterAcked, `counter at v${counter.version}, last acknowledged v${counterAcked}`);

  const deadline = Date.now() + 15_000;
  while ([...acked.keys()].some((k) => !announced.has(k)) && Date.now() < deadline) await sleep(50);
  t.same([...acked.keys()].filter((k) => !announced.has(k)), [], 'a notice for every acknowledged write, sent after the restart');

  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0, 'SIGTERM stops cleanly');
});

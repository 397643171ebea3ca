import t from 'tap';
import { connect, type NatsConnection } from 'nats';
import type { ChangeNotice } from '../../shared/src/subject.js';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { startNats } from '../helpers/nats.js';
import { until as waitUntil } from '../helpers/wait.js';

const CANARY = 'NOTICE-CANARY-7f3a';

/** This file's waits end hung tests after 10 s; the loop is test/helpers/wait.ts's. */
const until = (what: string, condition: () => boolean, ms = 10_000) => waitUntil(what, condition, ms);

async function subscribe(t: { teardown(fn: () => unknown): void }, url: string) {
  const nc: NatsConnection = await connect({ servers: url, reconnectTimeWait: 10, maxReconnectAttempts: -1 });
  t.teardown(() => nc.close());
  const received: Array<{ subject: string; notice: ChangeNotice; raw: string }> = [];
  const sub = nc.subscribe('lockbox.v1.changes.>');
  void (async () => {
    for await (const m of sub) received.push({ subject: m.subject, notice: JSON.parse(m.string()) as ChangeNotice, raw: m.string() });
  })();
  await nc.flush();
  // A probe the subscriber sends itself: once it comes back, the connection is up and every
  // subscription is registered on the server again (after an outage nats.js re-subscribes before
  // it sends what it buffered). Until then a notice published by someone else is lost to it.
  let probes = 0;
  const probe = nc.subscribe('lockbox-test.probe');
  void (async () => {
    for await (const _ of probe) probes++;
  })();
  const back = () => {
    const before = probes;
    nc.publish('lockbox-test.probe');
    return until('the probe came back', () => probes > before, 2_000).then(() => true, () => false);
  };
  return { nc, received, listening: () => waitUntil('the subscriber is connected and subscribed', back, 15_000) };
}

t.test('each change sends one notice with scope, name, version, operation and seq, never a value', async (t) => {
  const nats = await startNats(t);
  const { received } = await subscribe(t, nats.url);
  const d = await startTestDaemon(t, { natsUrl: nats.url });
  await until('publisher connected', () => d.daemon.publisher.isConnected);
  await d.call('CreateSecret', { scope: { resource_group: '*' }, ...createRequest('demo.key', { A: CANARY }) });
  await d.call('UpdateSecret', { scope: { resource_group: '*' }, name: 'demo.key', set: { A: Buffer.from(CANARY + '2') } });
  await d.call('DeleteSecret', { scope: { resource_group: '*' }, name: 'demo.key' });
  await until('3 notices', () => received.length >= 3);
  t.same(received.map((r) => r.subject), Array(3).fill('lockbox.v1.changes.default.%2A.demo%2Ekey'));
  t.same(received.map((r) => [r.notice.operation, r.notice.version]), [['create', 1], ['update', 2], ['delete', 2]]);
  t.same(received.map((r) => [r.notice.tenant, r.notice.resource_group, r.notice.name]), Array(3).fill(['default', '*', 'demo.key']));
  const seqs = received.map((r) => r.notice.seq);
  t.ok(seqs[0] < seqs[1] && seqs[1] < seqs[2], 'the global sequence grows');
  for (const r of received) t.notMatch(r.raw, CANARY, 'no value in a notice');
  t.same(await d.daemon.store.pendingNotices(10), [], 'the outbox is empty once sent');
});

t.test('notices wait in the outbox while NATS is down and arrive when it is back', async (t) => {
  const nats = await startNats(t);
  const { received, listening } = await subscribe(t, nats.url);
  const d = await startTestDaemon(t, { natsUrl: nats.url });
  await until('publisher connected', () => d.daemon.publisher.isConnected);
  await d.call('CreateSecret', createRequest('rotating', { A: '0' }));
  await until('first notice', () => received.length === 1);

  await nats.stop();
  await until('publisher sees the outage', () => !d.daemon.publisher.isConnected);
  for (let i = 1; i <= 5; i++) await d.call('UpdateSecret', { name: 'rotating', set: { A: Buffer.from(String(i)) } });
  t.equal((await d.daemon.store.pendingNotices(100)).length, 5, 'five acknowledged changes wait in the outbox');

  await nats.start();
  // The daemon's publisher and this test's subscriber both reconnect; which one is back first is
  // a race, so delivery to the subscriber is checked where it is deterministic (the restart test
  // below). Here: the outbox drains, and only through NATS confirming each notice.
  await until('outbox drained after NATS came back', () => d.daemon.publisher.published >= 6, 15_000);
  t.same(await d.daemon.store.pendingNotices(100), [], 'every waiting notice was sent');
  t.ok(received.every((r) => r.notice.version >= 1 && r.notice.version <= 6), 'whatever reached the subscriber is a real version');
  // Once the subscriber is back too, a change made now reaches it: a marker after the outage.
  await listening();
  await d.call('UpdateSecret', { name: 'rotating', set: { A: Buffer.from('7') } });
  await until('the daemon sent the change made after the outage', () => d.daemon.publisher.published >= 7);
  await until('the subscriber receives a change made after the outage', () => received.some((r) => r.notice.version === 7));
  t.pass('delivery resumed for the subscriber (notices are at least once: a repeat after the outage is allowed)');
  t.ok(d.logs.some((l) => l.includes('NATS connection lost')), 'the outage is logged');
});

t.test('notices committed while NATS was away are sent after a daemon restart', async (t) => {
  const nats = await startNats(t);
  await nats.stop();
  const d = await startTestDaemon(t, { natsUrl: nats.url });
  await d.call('CreateSecret', createRequest('later', { A: '1' }));
  await d.call('UpdateSecret', { name: 'later', set: { A: Buffer.from('2') } });
  t.ok(d.logs.some((l) => l.includes('NATS is not reachable')), 'the daemon says it runs without NATS');
  await d.stop();

  await nats.start();
  const { received } = await subscribe(t, nats.url);
  await d.restart();
  await until('both notices', () => received.length >= 2);
  t.same(received.map((r) => r.notice.version), [1, 2]);
});

t.test('a daemon without NATS says so and keeps notices', async (t) => {
  const d = await startTestDaemon(t, { natsUrl: '' });
  await d.call('CreateSecret', createRequest('quiet', { A: '1' }));
  t.ok(d.logs.some((l) => l.includes('NATS is disabled')));
  const pending = await d.daemon.store.pendingNotices(10);
  t.equal(pending.length, 1);
  t.equal(pending[0].subject, 'lockbox.v1.changes.default._.quiet');
});

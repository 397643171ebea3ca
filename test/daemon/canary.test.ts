import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'nats';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { startNats } from '../helpers/nats.js';
import { until } from '../helpers/wait.js';

const CANARY = 'CANARY-d41d8cd98f00b204e980';

t.test('a planted value never reaches the database files, the logs or NATS', async (t) => {
  const nats = await startNats(t);
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());
  const wire: string[] = [];
  const sub = nc.subscribe('>');
  void (async () => {
    for await (const m of sub) wire.push(m.subject + ' ' + m.string());
  })();
  await nc.flush();

  const d = await startTestDaemon(t, { natsUrl: nats.url });
  // Every path a value travels: create, update, batch, get with values, history, restore, errors.
  await d.call('CreateSecret', createRequest('canary', { OPENAI_API_KEY: CANARY }, { template: 'openai', description: 'holds a canary' }));
  await d.call('UpdateSecret', { name: 'canary', set: { OTHER: Buffer.from(CANARY + '-2') } });
  await d.call('BatchSecrets', { items: [{ create: { name: 'canary-b', data: { K: Buffer.from(CANARY + '-b') } } }, { create: { name: 'canary', data: { K: Buffer.from(CANARY) } } }] });
  await d.call('GetSecret', { name: 'canary', include_values: true });
  await d.call('RestoreVersion', { name: 'canary', version: 1 });
  await d.call('CreateSecret', createRequest('canary-idem', { K: CANARY }), { idempotencyKey: 'k1' });
  const refused = await d.call('CreateSecret', createRequest('canary-idem', { K: CANARY + 'x' }), { idempotencyKey: 'k1' }).catch((e) => e);
  t.notMatch(refused.details, CANARY, 'no value in an error');
  const invalid = await d.call('CreateSecret', createRequest('bad name', { K: CANARY })).catch((e) => e);
  t.notMatch(invalid.details, CANARY);
  await d.keysCall('RotateMasterKey', {});
  const wide = await d.call('GetSecret', { name: 'canary', include_values: true, version: 2 });
  t.equal(Buffer.from(wide.data.OTHER).toString(), CANARY + '-2', 'the value is really stored');
  // Every notice is on NATS once the outbox is empty; one round trip brings them to `wire`.
  await until('the outbox drained', async () => (await d.daemon.store.pendingNotices(1)).length === 0);
  await nc.flush();

  const files = readdirSync(d.dataDir).filter((f) => f.startsWith('lockbox.db'));
  t.ok(files.includes('lockbox.db'));
  for (const file of files) t.notOk(readFileSync(join(d.dataDir, file)).includes(CANARY), `${file} does not hold the value`);
  const logs = d.logs.join('\n');
  t.ok(d.logs.length > 5, 'the daemon logged (debug level)');
  t.notMatch(logs, CANARY, 'no log line holds the value');
  t.ok(wire.length >= 3, 'notices were published');
  t.notMatch(wire.join('\n'), CANARY, 'nothing on NATS holds the value');
  await d.stop();
  for (const file of readdirSync(d.dataDir).filter((f) => f.startsWith('lockbox.db')))
    t.notOk(readFileSync(join(d.dataDir, file)).includes(CANARY), `${file} after close`);
});

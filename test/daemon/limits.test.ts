/** Size limits at the gRPC boundary: what is over them is refused with a status a client can act on. */
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { limits } from '../../shared/src/limits.js';
import { startTestDaemon } from '../helpers/daemon.js';

t.test('a message over the 8 MiB gRPC limit is RESOURCE_EXHAUSTED; a secret over 1 MiB is INVALID_ARGUMENT', async (t) => {
  const d = await startTestDaemon(t);
  const huge = Buffer.alloc(9 * 1024 * 1024, 'x');
  await t.rejects(d.call('CreateSecret', { secret: { name: 'huge', data: { K: huge } } }), { code: status.RESOURCE_EXHAUSTED }, 'the transport refuses a 9 MiB message');
  const over = Buffer.alloc(limits.maxSecretBytes + 1, 'x');
  await t.rejects(d.call('CreateSecret', { secret: { name: 'over', data: { K: over } } }), { code: status.INVALID_ARGUMENT, details: /1048576|1 MiB|bytes/ }, 'one byte over the secret limit');
  const split = { A: Buffer.alloc(limits.maxSecretBytes / 2, 'a'), B: Buffer.alloc(limits.maxSecretBytes / 2 + 1, 'b') };
  await t.rejects(d.call('CreateSecret', { secret: { name: 'split', data: split } }), { code: status.INVALID_ARGUMENT }, 'the limit is the sum of the values');
  const exact = await d.call('CreateSecret', { secret: { name: 'exact', data: { K: Buffer.alloc(limits.maxSecretBytes, 'x') } } });
  t.equal(exact.version, 1, 'exactly 1 MiB is accepted');
  const back = await d.call('GetSecret', { name: 'exact', include_values: true });
  t.equal(Buffer.from(back.data.K).length, limits.maxSecretBytes, 'and read back whole');
  await t.rejects(d.call('GetSecret', { name: 'huge' }), { code: status.NOT_FOUND }, 'nothing of the refused message was stored');
});

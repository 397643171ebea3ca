/**
 * List cursors are signed: one the daemon did not issue — well-formed base64 of anything, an
 * altered or truncated real one, one from another daemon's keyring — is 400 INVALID_CURSOR over
 * REST and INVALID_ARGUMENT over gRPC, never a 500, and never changes what a list returns.
 */
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { createRequest, startTestDaemon } from '../helpers/daemon.js';
import { restClient } from '../helpers/rest.js';
import { ListCursors } from '../../daemon/src/services/list-cursor.js';

const b64 = (text: string) => Buffer.from(text).toString('base64url');

t.test('a cursor the daemon did not issue is INVALID_CURSOR', async (t) => {
  const d = await startTestDaemon(t);
  const rest = restClient(d);
  for (let i = 0; i < 5; i++) await d.call('CreateSecret', createRequest(`c-${i}`, { K: 'v' }));
  const page1 = await d.call('ListSecrets', { limit: 2 });
  const issued: string = page1.next_cursor;
  t.ok(issued, 'a real cursor');
  t.same((await d.call('ListSecrets', { limit: 2, cursor: issued })).secrets.map((s: { name: string }) => s.name), ['c-2', 'c-3'], 'a real cursor resumes');

  // A daemon with another keyring signs with another key.
  const other = new ListCursors(new Uint8Array(32).fill(7));
  const [payload] = issued.split('.');
  const forged = [
    'bnVsbA', // base64 of null
    b64('null'),
    b64('{"v":1,"a":"c-0","f":"x"}'),
    b64('[]'),
    b64('"x"'),
    b64('{"v":1,"a":{"toString":1}}'),
    `${b64('null')}.${'A'.repeat(22)}`,
    `${b64('{"v":1,"a":"c-0"}')}.${issued.split('.')[1]}`, // a real MAC over another payload
    `${payload}.${'A'.repeat(22)}`,
    issued.slice(0, -1),
    issued + 'A',
    `${issued}.x`,
    other.encode('c-0', 'anything'),
    'x'.repeat(5000),
    '..',
  ];
  for (const cursor of forged) {
    await t.rejects(d.call('ListSecrets', { limit: 2, cursor }), { code: status.INVALID_ARGUMENT, details: /^cursor: is not a cursor this server issued/ }, `gRPC ${cursor.slice(0, 40)}`);
    const answer = await rest('GET', `/v1/admin/secrets?limit=2&cursor=${encodeURIComponent(cursor)}`);
    t.equal(answer.status, 400, `REST ${cursor.slice(0, 40)}`);
    t.equal(answer.json?.error?.code, 'INVALID_CURSOR');
  }
  // Signed but for other filters: still refused, with the reason.
  const filtered = await rest('GET', `/v1/admin/secrets?limit=2&provider_slug=openai&cursor=${encodeURIComponent(issued)}`);
  t.equal(filtered.status, 400);
  t.equal(filtered.json.error.code, 'INVALID_CURSOR');
  t.match(filtered.json.error.message, /other filters/);
  t.notOk(d.logs.some((l) => l.includes('internal error')), 'no internal error logged');
});

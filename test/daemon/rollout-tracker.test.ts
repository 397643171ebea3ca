/**
 * delivery/rollout-tracker.ts on its own: when a rollout is over (every session it was pushed to
 * ACKed, or left), what a later version's ACK settles, and the cap per session and name.
 */
import t from 'tap';
import { RolloutTracker, type AwaitedAcks } from '../../daemon/src/delivery/rollout-tracker.js';
import type { SecretHead } from '../../daemon/src/store/store.js';

const head = (version: number, uid = 'u1', name = 'api') => ({ name, uid, version, createTime: new Date(Date.now() - 1000).toISOString() }) as SecretHead;

t.test('observed once every session it was pushed to has ACKed or left; not when none ACKed', async (t) => {
  const observed: number[] = [];
  const tracker = new RolloutTracker((s) => observed.push(s));
  const [a, b]: AwaitedAcks[] = [new Map(), new Map()];
  tracker.pushed(a, [head(2)]);
  tracker.pushed(b, [head(2)]);
  tracker.pushed(b, [head(2)]); // the same version again: still one wait
  t.same(tracker.pending(), { waiting: 1, nacked: 0 });
  tracker.acked(a, [{ name: 'api', uid: 'u1', version: 2 }], false);
  t.same(observed, [], 'one session still waits');
  tracker.closed(b);
  t.equal(observed.length, 1, 'over when the other left');
  t.ok(observed[0] >= 1 && observed[0] < 60, 'seconds from the commit time');
  t.same(tracker.pending(), { waiting: 0, nacked: 0 });

  const c: AwaitedAcks = new Map();
  tracker.pushed(c, [head(3)]);
  tracker.acked(c, [{ name: 'api', uid: 'u1', version: 3 }], true);
  t.equal(observed.length, 2, 'what is on disk counts, even with a NACK of something else');
  tracker.pushed(c, [head(4)]);
  tracker.acked(c, [{ name: 'api', uid: 'u1', version: 3 }], true);
  t.same(tracker.pending(), { waiting: 0, nacked: 1 }, 'a NACK leaves it pending, marked');
  tracker.closed(c);
  t.equal(observed.length, 2, 'left without any ACK: not observed');
});

t.test('an ACK of a later version settles the earlier ones; another uid settles nothing; at most 8 waits per name', async (t) => {
  const observed: number[] = [];
  const tracker = new RolloutTracker((s) => observed.push(s));
  const s: AwaitedAcks = new Map();
  tracker.pushed(s, [head(2), head(1, 'w1', 'hf')]);
  tracker.pushed(s, [head(3)]);
  tracker.acked(s, [{ name: 'api', uid: 'other', version: 9 }, { name: 'missing', uid: 'x', version: 1 }], false);
  t.same(observed, [], 'a recreated secret is not the version pushed');
  tracker.acked(s, [{ name: 'api', uid: 'u1', version: 3 }], false);
  t.equal(observed.length, 2, 'v2 and v3 both over');
  t.same([...s.keys()], ['hf'], 'hf still awaited');
  for (let v = 10; v < 20; v++) tracker.pushed(s, [head(v)]);
  t.equal(s.get('api')!.length, 8, 'the oldest waits dropped');
  t.same(tracker.pending(), { waiting: 9, nacked: 0 }, 'dropped ones left, never ACKed: not pending, not observed');
  t.equal(observed.length, 2);
});

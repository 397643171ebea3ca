import t from 'tap';
import { Backoff } from '../../shared/src/backoff.js';

t.test('delays double from initialMs up to maxMs; reset starts over', async (t) => {
  const b = new Backoff({ initialMs: 250, maxMs: 5000 });
  t.same(Array.from({ length: 7 }, () => b.next()), [250, 500, 1000, 2000, 4000, 5000, 5000]);
  t.equal(b.failures, 7);
  b.reset();
  t.equal(b.failures, 0);
  t.equal(b.next(), 250);
  t.same([new Backoff({ initialMs: 100, maxMs: 1000, factor: 3 }).next()], [100]);
});

t.test('jitter spreads each delay by ±the fraction, around the capped base', async (t) => {
  const low = new Backoff({ initialMs: 250, maxMs: 5000, jitter: 0.2, random: () => 0 });
  const high = new Backoff({ initialMs: 250, maxMs: 5000, jitter: 0.2, random: () => 0.999999 });
  t.same([low.next(), low.next()], [200, 400]);
  t.same([high.next(), high.next()], [300, 600]);
  for (let i = 0; i < 10; i++) low.next();
  t.equal(low.next(), 4000, 'jitter applies after the cap (5000 × 0.8)');
  const spread = new Set(Array.from({ length: 50 }, () => new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.25 }).next()));
  t.ok(spread.size > 10, `jittered delays differ (${spread.size} distinct of 50)`);
  for (const ms of spread) t.ok(ms >= 750 && ms <= 1250, `${ms} within ±25 %`);
});

t.test('wait sleeps the next delay, and an abort ends it early without throwing', async (t) => {
  const b = new Backoff({ initialMs: 1, maxMs: 1 });
  t.equal(await b.wait(), true);
  const stop = new AbortController();
  const long = new Backoff({ initialMs: 60_000, maxMs: 60_000 });
  const waiting = long.wait(stop.signal);
  stop.abort();
  t.equal(await waiting, false, 'a 60 s wait ends at the abort');
  t.equal(await long.wait(stop.signal), false, 'an aborted signal does not wait at all');
  t.equal(long.failures, 2);
});

t.test('nonsense settings are refused', async (t) => {
  t.throws(() => new Backoff({ initialMs: 0, maxMs: 10 }), RangeError);
  t.throws(() => new Backoff({ initialMs: 10, maxMs: 5 }), RangeError);
  t.throws(() => new Backoff({ initialMs: 10, maxMs: 50, jitter: 1 }), RangeError);
  t.throws(() => new Backoff({ initialMs: 10, maxMs: 50, factor: 0.5 }), RangeError);
});

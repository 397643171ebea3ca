import t from 'tap';
import { InvalidArgumentError } from '../../shared/src/errors.js';
import { fileNameProblem, relativePathProblem } from '../../shared/src/mount-path.js';
import { checkKeyName, checkLabels, checkMount, checkResourceGroup, checkSecretName, checkTenant, checkTime, parseTime } from '../../shared/src/validate.js';

t.test('mount paths: hostile ones are refused with a reason', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['/etc/passwd', /relative/],
    ['..', /"\.\." segment/],
    ['../x', /"\.\." segment/],
    ['a/../../etc', /"\.\." segment/],
    ['a/..', /"\.\." segment/],
    ['..sneaky', /must not start with "\.\."/],
    ['a/..data', /must not start with "\.\."/],
    ['./a', /"\." segment/],
    ['a//b', /empty segments/],
    ['a/', /empty segments/],
    ['a\0b', /NUL/],
    ['a\\b', /"\/"/],
    ['C:/x', /drive letter/],
    ['a\nb', /control characters/],
    ['x'.repeat(1025), /at most 1024/],
  ];
  for (const [path, reason] of bad) t.match(relativePathProblem(path), reason, JSON.stringify(path));
  for (const path of ['demo', 'demo/secrets/password', 'a.b/c-d_e', '.hidden', 'a/.b']) t.equal(relativePathProblem(path), undefined, path);
  t.match(fileNameProblem('a/b'), /"\/"/);
});

t.test('names, keys, scopes, labels', async (t) => {
  for (const name of ['demo', 'a', 'a.b-c_d', 'A1']) t.doesNotThrow(() => checkSecretName(name), name);
  for (const name of ['', '-a', 'a-', '.a', 'a b', 'a/b', 'a..b', 'ü', 'a\0']) t.throws(() => checkSecretName(name), InvalidArgumentError, JSON.stringify(name));
  for (const key of ['OPENAI_API_KEY', 'config.json', '.dockerconfigjson', 'a-b']) t.doesNotThrow(() => checkKeyName(key, 'k'), key);
  for (const key of ['', '..', '.', '..data', 'a/b', 'a b', 'a\0b', 'x'.repeat(254)]) t.throws(() => checkKeyName(key, 'k'), InvalidArgumentError, JSON.stringify(key));
  for (const tenant of ['default', 'acme-1']) t.doesNotThrow(() => checkTenant(tenant));
  for (const tenant of ['', 'Acme', '-a', 'a_b', 'a'.repeat(64)]) t.throws(() => checkTenant(tenant), InvalidArgumentError);
  for (const group of ['', '*', 'team-a']) t.doesNotThrow(() => checkResourceGroup(group));
  for (const group of ['**', 'a*', 'Team', ' ']) t.throws(() => checkResourceGroup(group), InvalidArgumentError);
  t.doesNotThrow(() => checkLabels({ team: 'a', 'example.com/tier': 'gold', empty: '' }));
  t.throws(() => checkLabels({ 'Example.com/x': 'v' }), /prefix/);
  t.throws(() => checkLabels(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']))), /at most 64/);
});

t.test('mounts', async (t) => {
  const base = { kind: 'file' as const, path: 'demo', subPaths: {}, format: '' as const };
  t.doesNotThrow(() => checkMount({ ...base, subPaths: { password: 'secrets/password' } }, ['password']));
  t.throws(() => checkMount({ ...base, format: 'sh' }, ['A']), /applies to env mounts only/);
  t.throws(() => checkMount({ ...base, kind: 'env', format: 'dotenv', subPaths: { A: 'x' } }, ['A']), /file mounts only/);
  t.throws(() => checkMount({ ...base, subPaths: { A: 'x'.repeat(1020) } }, ['A']), /total at most 1024/);
});

t.test('parseTime: RFC 3339 dates, and dates and times with their zone; nothing else', async (t) => {
  t.equal(parseTime('2026-01-31'), Date.UTC(2026, 0, 31), 'a date is midnight UTC');
  t.equal(parseTime('2026-01-31T12:00:00Z'), Date.UTC(2026, 0, 31, 12));
  t.equal(parseTime('2026-01-31t12:00:00z'), Date.UTC(2026, 0, 31, 12), 'RFC 3339 allows lower-case T and Z');
  t.equal(parseTime('2026-01-31T12:00Z'), Date.UTC(2026, 0, 31, 12), 'seconds optional');
  t.equal(parseTime('2026-01-31T12:00:00.250+02:00'), Date.UTC(2026, 0, 31, 10, 0, 0, 250), 'fractions and an offset');
  t.equal(parseTime('2024-02-29'), Date.UTC(2024, 1, 29), 'a leap day in a leap year');
  t.equal(parseTime('0001-01-01T00:00:00Z'), -62135596800000, "Go's zero time: years 0-99 are not read as 1900-1999");
  t.equal(parseTime('0099-12-31'), new Date('0099-12-31T00:00:00Z').getTime());
  t.equal(parseTime('2026-01-31T23:59:59.999-00:30'), Date.UTC(2026, 1, 1, 0, 29, 59, 999), 'a negative offset with minutes');
  for (const bad of ['', 'yesterday', '2026-01-31T12:00:00', '2026-1-31', '2026-13-01', '2026-01-31 12:00:00Z', 'Jan 31 2026', '1769860800', '2026-01-31T12:00:00Zjunk',
    '2026-02-30', '2026-04-31', '2026-02-29', '2026-00-10', '2026-01-00', '2026-01-31T24:00:00Z', '2026-01-31T12:60:00Z', '2026-01-31T12:00:60Z', '2026-01-31T12:00:00+24:00'])
    t.equal(parseTime(bad), undefined, `${JSON.stringify(bad)} refused`);
  t.equal(checkTime('2026-01-31', 'since'), Date.UTC(2026, 0, 31));
  t.throws(() => checkTime(`2026-${'1'.repeat(3_000_000)}`, 'before'), { message: /^before: "2026-1{59}…" is not an RFC 3339 time/ }, 'a huge value is cut short in the message (and the log)');
  t.ok((() => { try { checkTime('x'.repeat(100_000), 'before'); } catch (error) { return (error as Error).message.length < 300; } })(), 'the message stays short');
  t.throws(() => checkTime('yesterday', 'since'), { name: 'InvalidArgumentError', message: /since: "yesterday" is not an RFC 3339 time: give a date \(2026-01-31\) or a date and time with its zone/ });
});

import t from 'tap';
import { changeSubject, decodeSubjectToken, encodeSubjectToken } from '../../shared/src/subject.js';

t.test('every valid name is one valid subject token, and decodes back', async (t) => {
  const cases: Array<[string, string]> = [
    ['', '_'],
    ['*', '%2A'],
    ['default', 'default'],
    ['a.b', 'a%2Eb'],
    ['team-a_1', 'team-a_1'],
    ['>', '%3E'],
    ['ü', '%C3%BC'],
    ['a%b', 'a%25b'],
  ];
  for (const [name, token] of cases) {
    t.equal(encodeSubjectToken(name), token, JSON.stringify(name));
    t.equal(decodeSubjectToken(token), name);
    t.notMatch(token, /[.*>\s]/, 'no separator, wildcard or space');
  }
  t.equal(changeSubject('default', '', 'demo.key'), 'lockbox.v1.changes.default._.demo%2Ekey');
  t.equal(changeSubject('acme', '*', 'k'), 'lockbox.v1.changes.acme.%2A.k');
});

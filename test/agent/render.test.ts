/**
 * The agent checks everything the daemon sent before it writes (issue 11 item 9, agent side): a
 * secret whose mount path, sub-path or key is not a safe relative path (a tampered database row,
 * say) is left out and reported, and nothing of it reaches the writer; the other secrets still go.
 */
import t from 'tap';
import { render, type HeldSecret } from '../../agent/src/render.js';
import type { MountSpec } from '../../shared/src/validate.js';

const held = (name: string, mount: Partial<MountSpec>, data: Record<string, string> = { K: 'canary-value' }): HeldSecret => ({
  name,
  resourceGroup: '',
  uid: `uid-${name}`,
  version: 1,
  type: 'opaque',
  mount: { kind: 'file', path: name, subPaths: {}, format: '', ...mount },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)])),
});

const hostile: Array<[string, HeldSecret]> = [
  ['a mount path up and out', held('up', { path: '../../etc' })],
  ['an absolute mount path', held('abs', { path: '/etc' })],
  ['a mount path that climbs back', held('climb', { path: 'a/../../b' })],
  ['a reserved ..data segment', held('reserved', { path: 'x/..data' })],
  ['a mount path with NUL', held('nul', { path: 'a\0b' })],
  ['a sub-path up and out', held('subup', { subPaths: { K: '../../etc' } })],
  ['an absolute sub-path', held('subabs', { subPaths: { K: '/etc' } })],
  ['a sub-path into ..version', held('subver', { subPaths: { K: '..version' } })],
  ['a key that is a path', held('keypath', {}, { '../escape': 'x' })],
  ['a key named ..data', held('keydata', {}, { '..data': 'x' })],
  ['a sub-path on an env mount', held('envsub', { kind: 'env', format: 'dotenv', subPaths: { K: 'x' } })],
];

t.test('a secret with an unsafe path or key is left out, reported, and nothing of it is written', async (t) => {
  for (const [what, secret] of hostile) {
    const rendered = render([secret, held('fine', {})]);
    t.same([...rendered.dirs.keys()], ['fine'], `${what}: only the safe secret reaches the writer`);
    t.equal(rendered.problems.length, 1, `${what}: one problem`);
    t.match(rendered.problems[0], new RegExp(`^secret "${secret.name}" left out: `), `${what}: reported by name`);
    t.notOk(rendered.problems.join('\n').includes('canary-value'), `${what}: never the value`);
    t.same(rendered.env, {}, `${what}: nothing for exec either`);
  }
});

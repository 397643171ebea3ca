/**
 * Writes that fail half-way (the disk full: writeSync throws ENOSPC for files opened under a
 * chosen path: test/helpers/disk-full.ts) leave readers on the version before and nothing behind;
 * the agent retries them, reports the problem and does not count the version as applied until it
 * is on disk.
 */
import t from 'tap';
import { readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AtomicWriter } from '../../agent/src/atomic-writer.js';
import { defaultScope, startAgentWith } from '../helpers/agent.js';
import { tempDir } from '../helpers/daemon.js';
import { diskFull, injectDiskFull } from '../helpers/disk-full.js';

injectDiskFull(t);

const payload = (entries: Record<string, string>) => new Map(Object.entries(entries).map(([k, v]) => [k, Buffer.from(v)]));

t.test('a write that fails half-way (disk full) leaves the old version in place and nothing behind', async (t) => {
  const home = realpathSync(tempDir(t));
  const dir = join(home, 'demo');
  const w = new AtomicWriter(home, 'demo', { fileMode: 0o400, dirMode: 0o500 });
  await w.write(payload({ A: 'one', 'sub/B': 'two' }), 'a=1\n');
  await w.settle();
  const before = readlinkSync(join(dir, '..data'));

  diskFull.under = dir;
  for (let i = 0; i < 3; i++) await t.rejects(w.write(payload({ A: 'uno', 'sub/B': 'dos' }), 'a=2\n'), { code: 'ENOSPC' }, `try ${i + 1} fails`);
  t.equal(readlinkSync(join(dir, '..data')), before, '..data still points at the old version');
  t.equal(readFileSync(join(dir, 'A'), 'utf8'), 'one');
  t.equal(readFileSync(join(dir, 'sub/B'), 'utf8'), 'two');
  t.same(readdirSync(dir).filter((n) => n.startsWith('..') && n !== '..data' && n !== '..version'), [before], 'no half-written version left, however many tries');

  diskFull.under = '';
  t.equal(await w.write(payload({ A: 'uno', 'sub/B': 'dos' }), 'a=2\n'), true, 'with room again, the write goes through');
  await w.settle();
  t.equal(readFileSync(join(dir, 'A'), 'utf8'), 'uno');
  t.equal(readFileSync(join(dir, '..version'), 'utf8'), 'a=2\n');
  t.same(readdirSync(dir).filter((n) => /^\.\.\d{4}_/.test(n)), [readlinkSync(join(dir, '..data'))], 'only the new version');
});

t.test('the agent retries a dir it could not write, reports it, and does not count it as applied', async (t) => {
  const scope = defaultScope;
  const { d, agent, home, logs } = await startAgentWith(t, [{ name: 'openai', data: { OPENAI_API_KEY: 'sk-1' }, path: 'demo' }, { name: 'other', data: { TOKEN: 't-1' }, path: 'other' }], 'disk-full');
  const read = (rel: string) => readFileSync(join(home, rel), 'utf8');
  const status = async () => {
    await sleep(400); // reports go at most every 250 ms; SecretStatus writes the daemon's buffer first
    const { agents } = (await d.rpc('AgentService', 'SecretStatus', { scope, name: 'openai' })) as { agents: Array<{ agent_id: string; version: number; problems?: string[] }> };
    return agents.find((a) => a.agent_id === 'disk-full');
  };

  diskFull.under = join(home, 'demo');
  await d.call('UpdateSecret', { scope, name: 'openai', set: { OPENAI_API_KEY: Buffer.from('sk-2') } });
  await d.call('UpdateSecret', { scope, name: 'other', set: { TOKEN: Buffer.from('t-2') } });
  await agent.request({ names: ['openai', 'other'] });
  t.equal(read('demo/OPENAI_API_KEY'), 'sk-1', 'readers keep the version before');
  t.equal(read('other/TOKEN'), 't-2', 'the other dir is written');
  t.match(logs.find((l) => l.startsWith('sync failed; retrying')), /mount \\"demo\\" not written: ENOSPC/, 'the failure is logged, by path, and retried');
  const during = await status();
  t.equal(during?.version, 1, 'rollout status: still on v1, the version on disk');
  t.match(during?.problems, [/^mount "demo" not written: ENOSPC/], 'and the problem, reported');
  t.notOk(logs.join('\n').includes('sk-2'), 'never the value');

  diskFull.under = '';
  const start = Date.now();
  while (read('demo/OPENAI_API_KEY') !== 'sk-2') {
    if (Date.now() - start > 10_000) throw new Error('the retry never wrote v2');
    await sleep(20);
  }
  const ms = Date.now() - start;
  t.ok(ms < 6000, `written by the retry ${ms} ms after the disk had room (resync is 60 s away)`);
  t.same(agent.problems, [], 'the problem clears');
  const after = await status();
  t.equal(after?.version, 2, 'rollout status: v2 once it is on disk');
  t.same(after?.problems ?? [], []);
});

/**
 * Tamper repair where inotify cannot watch (out of watches: ENOSPC, as on a node whose
 * fs.inotify.max_user_watches is used up): the agent says so once and checks every mount dir
 * every second instead. fs.watch is made to fail for this file's process only.
 */
import t from 'tap';
import fs, { readFileSync, unlinkSync, writeFileSync, chmodSync, readlinkSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { until } from '../helpers/wait.js';
import { startAgentWith } from '../helpers/agent.js';

const realWatch = fs.watch;
let watchCalls = 0;
fs.watch = (() => {
  watchCalls++;
  throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached, watch'), { code: 'ENOSPC' });
}) as typeof fs.watch;
syncBuiltinESMExports();
t.teardown(() => {
  fs.watch = realWatch;
  syncBuiltinESMExports();
});

const read = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};


t.test('without inotify, a deleted or changed file still comes back within about a second', async (t) => {
  const { home, logs } = await startAgentWith(t, [{ name: 'openai', data: { OPENAI_API_KEY: 'sk-0' }, path: 'demo' }], 'fallback');
  const file = join(home, 'demo/OPENAI_API_KEY');
  t.equal(read(file), 'sk-0');
  t.ok(watchCalls > 0, 'the agent tried to watch');
  const said = logs.filter((l) => l.startsWith('cannot watch the mount dirs; checking them every second instead'));
  t.equal(said.length, 1, 'said once, with the reason');
  t.match(said[0], /ENOSPC/);

  unlinkSync(file);
  await until('the deleted file restored by the periodic check (inotify is out)', () => read(file) === 'sk-0', 20_000);
  const version = join(home, 'demo', readlinkSync(join(home, 'demo/..data')));
  chmodSync(version, 0o700);
  chmodSync(join(version, 'OPENAI_API_KEY'), 0o600);
  writeFileSync(join(version, 'OPENAI_API_KEY'), 'forged');
  await until('the file changed in place restored', () => read(file) === 'sk-0', 20_000);
  t.ok(logs.some((l) => l.startsWith('files were changed or deleted under the agent; restored') && l.includes(join(home, 'demo'))), 'logged by path');
  t.notOk(logs.join('\n').includes('sk-0'), 'never the value');
});

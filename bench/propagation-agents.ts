/**
 * A process hosting some of the propagation benchmark's agents (bench/propagation.ts forks
 * several, as pods would be several processes). Each agent gets its own home dir (under `homes`)
 * and session, with tamper watches on, as lockbox-agent runs it (AGENT_REPAIR=0 turns them off,
 * to see what they cost). Per version it notes, per agent, the monotonic clock (hrtime, shared by
 * every process of the machine) at which the new content became readable there; it says only
 * `done` per version while updates run, so that reporting costs the agents' processes as little
 * CPU as it can, and hands every time over when asked.
 * Messages: in {start: {addr, token, count, id, homes}} | {cpu: true} | {times: true} | 'stop';
 * out {ready: ms} | {done: version} | {cpu: {user, system} (µs)} | {times: [version, hrtime ns[]][]}.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { Agent } from '../agent/src/agent.js';

// AGENT_CPU_PROFILE=DIR: a CPU profile of each host process over the updates only (not start-up).
const profileDir = process.env.AGENT_CPU_PROFILE;
let profiler: Session | undefined;

const quiet = { info() {}, warn() {}, error() {} };
const send = (message: object) => process.send!(message);
const homes: string[] = [];
const agents: Agent[] = [];
const seen = new Map<number, bigint[]>();
let count = 0;

process.on('message', async (message: { start?: { addr: string; token: string; count: number; id: string; homes: string }; cpu?: boolean; times?: boolean } | 'stop') => {
  if (message === 'stop') {
    if (profiler) {
      const { profile } = await profiler.post('Profiler.stop');
      writeFileSync(join(profileDir!, `agents-${process.pid}.cpuprofile`), JSON.stringify(profile));
    }
    for (const agent of agents) await agent.stop();
    for (const home of homes) rmSync(home, { recursive: true, force: true });
    process.exit(0);
  }
  if (message.cpu) send({ cpu: process.cpuUsage() });
  if (message.times) send({ times: [...seen].map(([version, times]) => [version, times.map(String)]) });
  if (message.start) {
    const { addr, token, id, homes: base } = message.start;
    count = message.start.count;
    for (let i = 0; i < count; i++) {
      const home = mkdtempSync(join(base, 'lockbox-bench-agent-'));
      homes.push(home);
      agents.push(
        new Agent({
          client: { addr, token },
          bentomlHome: home,
          resyncIntervalMs: 3_600_000,
          modes: { fileMode: 0o400, dirMode: 0o500 },
          agentId: `bench-${id}-${i}`,
          repair: process.env.AGENT_REPAIR !== '0',
          log: quiet,
          onChange: (rendered) => {
            const now = process.hrtime.bigint();
            const version = Number(/openai=(\d+)/.exec(rendered.versions.get('demo') ?? '')?.[1]);
            let times = seen.get(version);
            if (!times) seen.set(version, (times = []));
            if (times.push(now) === count) send({ done: version });
          },
        }),
      );
    }
    const t0 = Date.now();
    for (let i = 0; i < agents.length; i += 50) await Promise.all(agents.slice(i, i + 50).map((a) => a.start()));
    if (profileDir) {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
    send({ ready: Date.now() - t0 });
  }
});

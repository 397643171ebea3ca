/**
 * A process hosting some of the propagation benchmark's agents (bench/propagation.ts forks
 * several, as pods would be several processes). Each agent gets its own home dir, gRPC client and
 * NATS connection. For every version it reports, per agent, the monotonic clock (hrtime, shared
 * by every process of the machine) at which the new content became readable there.
 * Messages: in {start: {addr, token, count, id}} | {expect: version} | 'stop';
 * out {ready: ms} | {version, seen: string[] (hrtime ns)}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { Agent } from '../agent/src/agent.js';
import { benchHome } from './harness.js';

// AGENT_CPU_PROFILE=DIR: a CPU profile of each host process over the updates only (not start-up).
const profileDir = process.env.AGENT_CPU_PROFILE;
let profiler: Session | undefined;

const quiet = { info() {}, warn() {}, error() {} };
const send = (message: object) => process.send!(message);
const homes: string[] = [];
const agents: Agent[] = [];
const seen = new Map<number, bigint[]>();
let expected = 0;
let count = 0;

function maybeReport(version: number): void {
  const times = seen.get(version);
  if (version === expected && times && times.length === count) send({ version, seen: times.map(String) });
}

process.on('message', async (message: { start?: { addr: string; token: string; count: number; id: string }; expect?: number } | 'stop') => {
  if (message === 'stop') {
    if (profiler) {
      const { profile } = await profiler.post('Profiler.stop');
      writeFileSync(join(profileDir!, `agents-${process.pid}.cpuprofile`), JSON.stringify(profile));
    }
    for (const agent of agents) await agent.stop();
    for (const home of homes) rmSync(home, { recursive: true, force: true });
    process.exit(0);
  }
  if (message.start) {
    const { addr, token, id } = message.start;
    count = message.start.count;
    for (let i = 0; i < count; i++) {
      const home = mkdtempSync(join(benchHome, 'lockbox-bench-agent-'));
      homes.push(home);
      agents.push(
        new Agent({
          client: { addr, token },
          bentomlHome: home,
          resyncIntervalMs: 3_600_000,
          modes: { fileMode: 0o400, dirMode: 0o500 },
          agentId: `bench-${id}-${i}`,
          log: quiet,
          onChange: (rendered) => {
            const now = process.hrtime.bigint();
            const v = Number(/openai=(\d+)/.exec(rendered.versions.get('demo') ?? '')?.[1]);
            if (!seen.has(v)) seen.set(v, []);
            seen.get(v)!.push(now);
            maybeReport(v);
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
  if (message.expect !== undefined) {
    expected = message.expect;
    maybeReport(expected);
  }
});

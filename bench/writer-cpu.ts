/**
 * The atomic writer alone, no gRPC: N writers (one mount dir each, one file), every round each
 * writes a new version, all side by side as the agents of one process would; prints the CPU per
 * write (process.cpuUsage: user, system) and the wall time per round. What a rotation costs the
 * file system, apart from the session (bench/propagation.ts measures the whole agent).
 *   node dist/bench/writer-cpu.js [--writers 100] [--rounds 30] [--tmpfs | --dir DIR]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AtomicWriter } from '../agent/src/atomic-writer.js';
import { describeFileSystem, homesDir } from './harness.js';

const { values: args } = parseArgs({ options: { writers: { type: 'string', default: '100' }, rounds: { type: 'string', default: '30' }, tmpfs: { type: 'boolean', default: false }, dir: { type: 'string' } } });
const base = homesDir(args);
const n = Number(args.writers);
const rounds = Number(args.rounds);
const homes = Array.from({ length: n }, () => mkdtempSync(join(base, 'lockbox-bench-writer-')));
const writers = homes.map((home) => new AtomicWriter(home, 'demo', { fileMode: 0o400, dirMode: 0o500 }));
let version = 0;
const round = async () => {
  version++;
  await Promise.all(writers.map((w) => w.write(new Map([['OPENAI_API_KEY', Buffer.from(`sk-${version}`)]]), `openai=${version}\n`, { trustWritten: true })));
};
for (let i = 0; i < 5; i++) await round(); // warm-up
await Promise.all(writers.map((w) => w.settle()));
const before = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < rounds; i++) await round();
await Promise.all(writers.map((w) => w.settle()));
const cpu = process.cpuUsage(before);
const per = (us: number) => (us / 1000 / (n * rounds)).toFixed(3);
console.log(`${n} writers × ${rounds} rounds on ${describeFileSystem(base)}: CPU per write ${per(cpu.user + cpu.system)} ms (user ${per(cpu.user)}, system ${per(cpu.system)}); ${((performance.now() - t0) / rounds).toFixed(1)} ms a round`);
for (const home of homes) rmSync(home, { recursive: true, force: true });

/** Runs the built programs (dist/) as real processes: for crash tests and the CLI binary. */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentNodeFlags } from '../../agent/src/node-flags.js';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const daemonBin = join(repoRoot, 'dist', 'daemon', 'src', 'main.js');
export const cliBin = join(repoRoot, 'dist', 'cli', 'src', 'main.js');
/** What the `lockbox-agent` command runs: the bundle of agent/src/main.ts (agent/bundle.mjs). */
export const agentBin = join(repoRoot, 'dist', 'agent', 'lockbox-agent.js');
/** The node flags of lockbox-agent's shebang: tests start the agent as the installed command does. */
export const agentFlags = agentNodeFlags();
/**
 * The environment a spawned lockbox-agent gets. Under tap's coverage, processinfo drops a whole
 * script whose source map names any node_modules file, and the bundle's map names grpc-js and
 * the rest beside agent/src: widening the exclusion to nothing keeps the bundle's coverage, and
 * the report still leaves node_modules out (it maps the bundle back to agent/src and shared/src).
 */
export function agentEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const coverage = process.env._TAPJS_PROCESSINFO_COV_EXCLUDE_ !== undefined ? { _TAPJS_PROCESSINFO_COV_EXCLUDE_: '/^$./' } : {};
  return { ...process.env, ...coverage, ...env };
}

export interface SpawnedDaemon {
  child: ChildProcess;
  addr: string;
  output: () => string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/** Starts lockboxd and waits for its "lockboxd ready" line. */
export function spawnDaemon(args: string[], env: NodeJS.ProcessEnv = {}, cwd = repoRoot): Promise<SpawnedDaemon> {
  // Tests run side by side: the REST gateway takes a free port too unless the test names one.
  const httpArgs = args.includes('--http-addr') ? [] : ['--http-addr', '127.0.0.1:0'];
  const child = spawn(process.execPath, [daemonBin, ...args, ...httpArgs], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((l) => l.includes('"lockboxd ready"'));
      if (line) resolve({ child, addr: (JSON.parse(line) as { addr: string }).addr, output: () => output, exited });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    void exited.then((code) => reject(new Error(`lockboxd exited (${code}) before it was ready:\n${output}`)));
  });
}

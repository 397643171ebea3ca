/**
 * A real nats-server for tests: started on a free port (-p -1, read back from the ports file),
 * stoppable and restartable on the same port to simulate outages, killed by PID at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface TestNats {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

import { existsSync } from 'node:fs';

/** NATS_SERVER_BIN, else the Debian location, else whatever PATH finds. */
const binary = process.env.NATS_SERVER_BIN ?? (existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server');

async function waitFor<T>(probe: () => T | undefined, what: string, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Optional auth the server requires: a user and password, or a token. */
export interface NatsAuth {
  user?: string;
  password?: string;
  token?: string;
}

export async function startNats(t: { teardown(fn: () => unknown): void }, auth: NatsAuth = {}): Promise<TestNats> {
  const authArgs = [...(auth.user ? ['--user', auth.user, '--pass', auth.password ?? ''] : []), ...(auth.token ? ['--auth', auth.token] : [])];
  const dir = mkdtempSync(join(tmpdir(), 'lockbox-nats-'));
  let child: ChildProcess | undefined;
  let port = -1;

  const launch = async () => {
    child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '--ports_file_dir', dir, ...authArgs], { stdio: 'ignore' });
    const pid = child.pid!;
    const portsFile = join(dir, `nats-server_${pid}.ports`);
    const ports = await waitFor(() => {
      try {
        return JSON.parse(readFileSync(portsFile, 'utf8')) as { nats: string[] };
      } catch {
        return undefined;
      }
    }, 'nats-server ports file');
    port = Number(new URL(ports.nats[0]).port);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
    for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
  };
  await launch();
  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    stop,
    start: launch,
  };
}

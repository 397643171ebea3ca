/**
 * A PostgreSQL server of the test process's own, as nats.ts starts a nats-server: so the
 * PostgreSQL tests need no database server running on the machine.
 *
 * 1. Find initdb and postgres: on PATH, else the newest /usr/lib/postgresql/<version>/bin
 *    (Debian's layout).
 * 2. initdb into a fresh temp dir (trust auth, user `postgres`, no fsync). PostgreSQL refuses to
 *    run as root, so as root the dir is handed to `nobody` and both programs run as that user.
 * 3. Start postgres on 127.0.0.1 at a free port, its socket in the temp dir (not the system's
 *    /var/run/postgresql), fsync off (nothing here outlives the test), and wait until it answers
 *    (or exits: its log is in the error).
 * 4. Stop it with SIGQUIT (immediate shutdown) and remove the dir when the test file ends. A
 *    test process that is killed (tap's timeout) runs no exit handler, so a watchdog holds a pipe
 *    from this process: when the pipe closes, however this process ended, it stops postgres and
 *    removes the dir.
 *
 * Measured on the 2-core CI machine under load: initdb ~3 s, start ~0.3 s, once per test file
 * that uses PostgreSQL (two files today), so one server per file rather than a shared one.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { freePort } from './free-port.js';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export interface OwnPostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

/** (1) The directory holding initdb and postgres. */
export function findPostgresBin(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const onPath = (env.PATH ?? '').split(delimiter).find((dir) => dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres')));
  if (onPath) return onPath;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  return versions.map((v) => join(root, v, 'bin')).find((dir) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres')));
}

/** The uid and gid of `nobody`, whom PostgreSQL runs as when we are root. */
function nobody(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  return { uid: Number(uid ?? 65534), gid: Number(gid ?? 65534) };
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const bin = findPostgresBin();
  if (!bin) {
    throw new Error('PostgreSQL tests: no initdb/postgres on PATH or under /usr/lib/postgresql/*/bin; install PostgreSQL (Debian: postgresql) or set LOCKBOX_TEST_DATABASE_URL');
  }
  const dir = mkdtempSync(join(tmpdir(), 'lockbox-pg-'));
  const dataDir = join(dir, 'data');
  const asUser = process.getuid?.() === 0 ? nobody() : undefined;
  if (asUser) chownSync(dir, asUser.uid, asUser.gid);
  const init = spawnSync(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '-N'], { ...asUser, encoding: 'utf8' }); // (2)
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${init.status ?? init.error?.message}): ${init.stderr}`);
  }
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const log: string[] = [];
    const child: ChildProcess = spawn(
      join(bin, 'postgres'),
      ['-D', dataDir, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'],
      { ...asUser, stdio: ['ignore', 'ignore', 'pipe'] },
    ); // (3)
    child.stderr!.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const ready = await Promise.race([waitUntilAnswering(url, () => child.exitCode === null), exited.then(() => false)]);
    if (!ready) {
      // Another process may have taken the port between freePort and the bind: try another.
      if (attempt < 3 && /could not bind|address already in use/i.test(log.join(''))) continue;
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`postgres did not start: ${log.join('').slice(-2000)}`);
    }
    // (4) `cat` ends at EOF on its stdin, which only this process holds open.
    const watchdog = spawn('sh', ['-c', 'cat >/dev/null; kill -QUIT "$1" 2>/dev/null; sleep 1; rm -rf "$2"', 'watchdog', String(child.pid), dir], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    watchdog.unref();
    (watchdog.stdin as unknown as { unref(): void }).unref();
    return {
      url,
      port,
      dataDir,
      async stop() {
        watchdog.kill('SIGKILL');
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGQUIT');
          await exited;
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/** True once a connection succeeds; false if the server went away first. */
async function waitUntilAnswering(url: string, alive: () => boolean): Promise<boolean> {
  while (alive()) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return true;
    } catch {
      await client.end().catch(() => {});
      await sleep(50);
    }
  }
  return false;
}

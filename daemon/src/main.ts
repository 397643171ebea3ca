#!/usr/bin/env node
/** lockboxd: parse settings, start, stop cleanly on SIGTERM/SIGINT; or `lockboxd restore` (restore.ts). */
import { CommanderError } from 'commander';
import { SettingError } from '../../shared/src/settings.js';
import { parseDaemonConfig } from './config.js';
import { restoreBackup } from './restore.js';
import { startDaemon } from './daemon.js';
import { KeyringError } from './security/keyring.js';
import { createLogger } from './log.js';

/** `lockboxd restore FILE --data-dir DIR` (restore.ts): one line, exit 0; a refusal exit 2. */
function restoreCommand(argv: string[]): never {
  const usage = 'usage: lockboxd restore FILE --data-dir DIR (puts a `lockbox backup` file in place as the database of a new data dir)';
  const at = argv.indexOf('--data-dir');
  const dataDir = at >= 0 ? argv[at + 1] : process.env.LOCKBOX_DATA_DIR;
  const rest = argv.filter((_, i) => i !== at && i !== at + 1);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  if (rest.length !== 1 || !dataDir) {
    process.stderr.write(`lockboxd: ${usage}\n`);
    process.exit(2);
  }
  try {
    const { path, schemaVersion } = restoreBackup(rest[0], dataDir);
    process.stdout.write(`restored ${rest[0]} to ${path} (schema version ${schemaVersion}); start lockboxd with --data-dir ${dataDir} and the same master key\n`);
    process.exit(0);
  } catch (error) {
    process.stderr.write(`lockboxd: ${(error as Error).message}\n`);
    process.exit(error instanceof SettingError ? 2 : 1);
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'restore') restoreCommand(process.argv.slice(3));
  let config;
  try {
    config = parseDaemonConfig(process.argv.slice(2));
  } catch (error) {
    if (error instanceof SettingError) {
      process.stderr.write(`lockboxd: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger({ level: config.logLevel });
  let daemon;
  try {
    daemon = await startDaemon(config, log);
  } catch (error) {
    const message = error instanceof KeyringError || error instanceof Error ? error.message : String(error);
    log.fatal({ err: message }, 'lockboxd could not start');
    process.stderr.write(`lockboxd: ${message}\n`);
    process.exit(1);
  }
  // For scripts and tests that start lockboxd on port 0: a log line like the others, written
  // whatever --log-level says.
  log.child({}, { level: 'info' }).info({ addr: daemon.address, http: daemon.httpUrl ?? '', admin_token_file: daemon.adminTokenPath }, 'lockboxd ready');
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info({ signal }, 'stopping: draining calls and flushing the outbox');
      daemon.stop().then(
        () => process.exit(0),
        (error: Error) => {
          log.error({ err: error.message }, 'stop failed');
          process.exit(1);
        },
      );
    });
  }
}

main().catch((error: unknown) => {
  // Commander has printed help (exit 0) or the usage error (exit 2, like any bad setting).
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  process.stderr.write(`lockboxd: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

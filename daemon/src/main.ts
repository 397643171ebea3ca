#!/usr/bin/env node
/** lockboxd: parse settings, start, stop cleanly on SIGTERM/SIGINT. */
import { CommanderError } from 'commander';
import { SettingError } from '../../shared/src/settings.js';
import { parseDaemonConfig } from './config.js';
import { startDaemon } from './daemon.js';
import { KeyringError } from './security/keyring.js';
import { createLogger } from './log.js';

async function main(): Promise<void> {
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
  // For scripts and tests that start lockboxd on port 0.
  process.stdout.write(JSON.stringify({ msg: 'lockboxd ready', addr: daemon.address, http: daemon.httpUrl ?? '', admin_token_file: daemon.adminTokenPath }) + '\n');
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

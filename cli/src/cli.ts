/**
 * The `lockbox` CLI, a gRPC client. `runCli` is the whole program with its I/O handed in, so
 * tests run it in-process; main.ts binds it to the real process. This file assembles the
 * program: the global options (shown in every command's help), one file per command group under
 * commands/, completion, the examples each help ends with, and the exit codes:
 * 0 ok, 1 the call failed (one line on stderr), 2 usage error.
 */
import { Argument, Command, CommanderError, Option } from 'commander';
import { addApplyCommand } from './commands/apply.js';
import { addAuditCommands } from './commands/audit.js';
import { addDeploymentCommands } from './commands/deployment.js';
import { addKeyCommands } from './commands/key.js';
import { addSecretCommands } from './commands/secret.js';
import { addStatusCommand } from './commands/status.js';
import { addTokenCommands } from './commands/token.js';
import { completionScript, shells, type Shell } from './completion.js';
import { cliContext, type CliContext, type CliIo } from './context.js';
import { addExamples } from './help-examples.js';
import { versionLine } from '../../shared/src/version.js';
import { addBackupCommand } from './commands/backup.js';
import { UsageError } from './inputs.js';
import { SettingError } from '../../shared/src/settings.js';

/** The whole program: global options, every command, completion and examples. */
export function buildProgram(io: CliIo): { program: Command; ctx: CliContext } {
  const program = new Command('lockbox')
    .description('lockbox CLI: manage secrets in lockboxd over gRPC')
    .addOption(new Option('--addr <host:port>', 'lockboxd gRPC address').env('LOCKBOX_ADDR').default('127.0.0.1:7700'))
    .addOption(new Option('--token <token>', 'API token (prefer LOCKBOX_TOKEN or --token-file: flags show in ps)').env('LOCKBOX_TOKEN'))
    .addOption(new Option('--token-file <path>', 'file holding the token (default ./.lockbox/admin.token)').env('LOCKBOX_TOKEN_FILE'))
    .addOption(new Option('-o, --output <format>', 'output format (name: one kind/name line per object)').choices(['table', 'json', 'yaml', 'name']).default('table'))
    .addOption(new Option('--tls-ca <path>', 'CA bundle (PEM) to verify lockboxd: enables TLS').env('LOCKBOX_TLS_CA'))
    .addOption(new Option('--tls-cert <path>', 'client certificate (PEM) for mTLS').env('LOCKBOX_TLS_CERT'))
    .addOption(new Option('--tls-key <path>', 'client key (PEM) for mTLS').env('LOCKBOX_TLS_KEY'))
    .addOption(new Option('--timeout <duration>', 'per-call deadline, e.g. 500ms, 30s, 2m (a bare number is seconds)').env('LOCKBOX_TIMEOUT').default('30s'))
    .addHelpText('after', '\nlockbox --version (-V) prints the version.')
    .exitOverride()
    // Subcommands copy these settings when created: each command's help lists the global options too.
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)');
  const ctx = cliContext(program, io);

  const secret = addSecretCommands(program, ctx);
  for (const parent of [program, secret]) addApplyCommand(parent, ctx);
  addKeyCommands(program, ctx);
  addStatusCommand(program, ctx);
  addTokenCommands(program, ctx);
  addDeploymentCommands(program, ctx);
  addAuditCommands(program, ctx);
  addBackupCommand(program, ctx);
  program
    .command('completion')
    .description('print a completion script for bash, zsh or fish (built from these commands and flags)')
    .addArgument(new Argument('<shell>', 'the shell').choices(shells))
    .action((shell: Shell) => io.stdout(completionScript(program, shell)));
  addExamples(program);
  return { program, ctx };
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const { program, ctx } = buildProgram(io);
  // Only as the whole command line: `secret get NAME --version 2` is a subcommand's own flag.
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    io.stdout(`${versionLine('lockbox')}\n`);
    return 0;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return 0;
      if (error.code === 'commander.executeSubCommandAsync') return 1;
      return 2;
    }
    if (error instanceof UsageError || error instanceof SettingError) {
      io.stderr(`lockbox: ${error.message}\n`);
      return 2;
    }
    io.stderr(`lockbox: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    ctx.close();
  }
}

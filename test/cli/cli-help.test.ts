/**
 * What `lockbox` tells a person before any call: every command's help shows the global flags and
 * ends with examples whose flags exist; `lockbox completion bash|zsh|fish` completes commands,
 * flags and flag values in real shells; `--timeout` and `--ttl` take the one duration syntax.
 */
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram, runCli } from '../../cli/src/cli.js';
import { allCommands, commandPath, examples } from '../../cli/src/help-examples.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), readStdin: () => Buffer.alloc(0), cwd: process.cwd() });
  return { code, stdout, stderr };
}

const noIo = { stdout: () => {}, stderr: () => {}, readStdin: () => Buffer.alloc(0), cwd: process.cwd() };
const { program } = buildProgram(noIo);
const commands = allCommands(program);
// Every option of the program (so --version, too, once it is one), and at least these.
const globalFlags = [...new Set(['--addr', '--token', '--token-file', '--output', '--tls-ca', '--tls-cert', '--tls-key', '--timeout', ...program.options.map((o) => o.long!)])];

t.test('every command\'s help lists the global flags and ends with examples', async (t) => {
  t.ok(commands.length >= 25, `${commands.length} commands`);
  for (const command of commands) {
    const path = commandPath(command);
    const r = await cli([...path.split(' ').filter(Boolean), '--help']);
    t.equal(r.code, 0, `${path || 'lockbox'} --help`);
    if (command !== program) t.match(r.stdout, /\nGlobal Options:\n/, `${path}: global options shown`);
    for (const flag of globalFlags) t.ok(r.stdout.includes(` ${flag} `), `${path || 'lockbox'}: ${flag} in its help`);
    t.match(r.stdout, /\nExamples:\n {2}\$ .*lockbox /, `${path || 'lockbox'}: has examples`);
  }
  t.same(Object.keys(examples).sort(), commands.map(commandPath).sort(), 'no examples for a command that does not exist');
});

/** The command an example runs, and the flags it passes. */
function exampleTarget(line: string): { command: Command; flags: string[] } {
  const words = line.replace(/^.*\| /, '').split(/\s+/).slice(1);
  let command = program;
  const flags: string[] = [];
  for (const word of words) {
    const sub = command.commands.find((c) => c.name() === word);
    if (sub && flags.length === 0) command = sub;
    else if (/^--?[a-z]/.test(word)) flags.push(word.split('=')[0]);
  }
  return { command, flags };
}

t.test('every example names flags its command takes', async (t) => {
  for (const [path, lines] of Object.entries(examples)) {
    for (const line of lines) {
      if (!line.startsWith('lockbox ') && !line.includes('| lockbox ')) continue; // shell around the command, e.g. source <(…)
      const { command, flags } = exampleTarget(line);
      const known = [...command.options, ...program.options].flatMap((o) => [o.long, o.short]);
      for (const flag of flags) t.ok(known.includes(flag), `${path}: "${line}" — ${flag} is a flag of ${commandPath(command) || 'lockbox'}`);
    }
  }
});

/** bash: runs the completion function on the words, the last being the one completed. */
function completeInBash(script: string, words: string[]): string[] {
  const out = execFileSync('bash', ['-c', `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _lockbox_complete; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', script, ...words], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean);
}

t.test('bash completion: commands, subcommands, flags, flag values, the path through global flags', async (t) => {
  const dir = tempDir(t);
  const r = await cli(['completion', 'bash']);
  t.equal(r.code, 0);
  const script = join(dir, 'lockbox.bash');
  writeFileSync(script, r.stdout);
  t.same(completeInBash(script, ['lockbox', 'sec']), ['secret']);
  t.same(completeInBash(script, ['lockbox', 'secret', 'cr']), ['create']);
  t.same(completeInBash(script, ['lockbox', 'secret', 'create', '--te']).sort(), ['--template', '--tenant', '--tenant-wide']);
  t.same(completeInBash(script, ['lockbox', '-o', '']), ['table', 'json', 'yaml', 'name']);
  t.same(completeInBash(script, ['lockbox', 'secret', 'create', '--type', '']), ['opaque', 'container_registry']);
  t.same(completeInBash(script, ['lockbox', 'token', 'create', '--role', 'a']), ['agent']);
  t.same(completeInBash(script, ['lockbox', '--resource-group', 'secret', 'deployment', 'g']), ['get'], 'a flag\'s value is not taken for a command');
  t.same(completeInBash(script, ['lockbox', '--addr', 'x:1', 'secret', 'get', '--re']).sort(), ['--resource-group', '--reveal']);
  t.same(completeInBash(script, ['lockbox', 'completion', '']).sort(), ['bash', 'fish', 'zsh']);
  t.ok(completeInBash(script, ['lockbox', 'key', 'list', '--']).includes('--timeout'), 'global flags complete on every command');
});

const has = (shell: string) => spawnSync(shell, ['-c', 'exit 0'], { stdio: 'ignore' }).status === 0;

t.test('zsh completion runs the same function through bashcompinit', { skip: has('zsh') ? false : 'zsh not installed' }, async (t) => {
  const dir = tempDir(t);
  const script = join(dir, 'lockbox.zsh');
  writeFileSync(script, (await cli(['completion', 'zsh'])).stdout);
  // zsh's compgen offers every candidate and the completion system filters by prefix itself.
  const out = execFileSync('zsh', ['-c', `source "$1"; setopt ksharrays; COMP_WORDS=(lockbox secret cr); COMP_CWORD=2; _lockbox_complete; print -l -- "\${COMPREPLY[@]}"`, 'zsh', script], { encoding: 'utf8' });
  t.same(out.split('\n').filter(Boolean), ['create', 'get', 'update', 'delete', 'list', 'history', 'restore', 'apply']);
});

t.test('fish completion: commands, flags and values with descriptions', { skip: has('fish') ? false : 'fish not installed' }, async (t) => {
  const dir = tempDir(t);
  const script = join(dir, 'lockbox.fish');
  writeFileSync(script, (await cli(['completion', 'fish'])).stdout);
  const complete = (line: string) =>
    execFileSync('fish', ['-c', 'source $argv[1]; complete -C $argv[2]', script, line], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t')[0]);
  t.same(complete('lockbox secret cr'), ['create']);
  t.same(complete('lockbox secret create --type ').sort(), ['container_registry', 'opaque']);
  t.same(complete('lockbox --addr x:1 secret get --re').sort(), ['--resource-group', '--reveal']);
  t.same(complete('lockbox deployment create --resource-group secret --sec'), ['--secret']);
  t.same(complete('lockbox completion ').sort(), ['bash', 'fish', 'zsh']);
});

t.test('completion: an unknown shell is a usage error', async (t) => {
  const r = await cli(['completion', 'tcsh']);
  t.equal(r.code, 2);
  t.match(r.stderr, /value 'tcsh' is invalid for argument 'shell'\. Allowed choices are bash, zsh, fish/);
});

t.test('--timeout and --ttl take the one duration syntax (a bare number is seconds)', async (t) => {
  const d = await startTestDaemon(t);
  const g = ['--addr', d.daemon.address, '--token', d.adminToken];
  for (const timeout of ['20000ms', '30s', '2m', '1h', '30']) t.equal((await cli([...g, '--timeout', timeout, 'secret', 'list'])).code, 0, `--timeout ${timeout}`);
  let r = await cli([...g, '--timeout', 'soon', 'secret', 'list']);
  t.equal(r.code, 2);
  t.equal(r.stderr, 'lockbox: --timeout: "soon" is not a duration (e.g. 500ms, 30s, 2m, 1h; a bare number is seconds)\n');
  r = await cli([...g, '--timeout', '0s', 'secret', 'list']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--timeout: "0s" must be more than 0/);

  r = await cli([...g, '-o', 'json', 'token', 'create', '--role', 'viewer', '--ttl', '2h']);
  t.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout).info;
  t.equal(Math.round((Date.parse(info.expire_time) - Date.parse(info.create_time)) / 1000), 7200, '--ttl 2h is 7200 s');
  r = await cli([...g, 'token', 'create', '--role', 'viewer', '--ttl', '1500ms']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--ttl: "1500ms" must be whole seconds, 1s or more/);
});

/**
 * The examples every command's `--help` ends with, by command path, in one table so they read
 * as one manual. A command without an entry is a defect: test/cli/cli-help.test.ts walks the
 * whole program and fails on it. Examples never hold a real value: keys come from files or stdin.
 */
import type { Command } from 'commander';

export const examples: Record<string, string[]> = {
  '': [
    'lockbox secret create demo OPENAI_API_KEY=@key.txt --template openai --path demo',
    'lockbox secret list -o json',
    'lockbox --addr lockbox.internal:7700 --tls-ca ca.pem --token-file admin.token secret list',
    'source <(lockbox completion bash)',
  ],
  secret: ['lockbox secret create demo OPENAI_API_KEY=@key.txt --template openai', 'lockbox secret get demo --reveal -o json'],
  'secret create': [
    'lockbox secret create demo OPENAI_API_KEY=@key.txt --template openai --path demo',
    'printf %s "$HF_TOKEN" | lockbox secret create hf HF_TOKEN=- --template huggingface --mount env',
    'lockbox secret create regcred server=ghcr.io username=bot password=@pw.txt --type container_registry',
    'lockbox secret create shared-hf HF_TOKEN=@hf.txt --template huggingface --tenant-wide',
  ],
  'secret get': ['lockbox secret get demo', 'lockbox secret get demo --reveal -o json', 'lockbox secret get demo --version 1 --resource-group team-a'],
  'secret update': [
    'lockbox secret update demo OPENAI_API_KEY=@new-key.txt',
    'lockbox secret update demo --remove OLD_KEY --label team=ml',
    'lockbox secret update demo OPENAI_API_KEY=@new-key.txt --expected-version 2',
  ],
  'secret delete': ['lockbox secret delete demo', 'lockbox secret delete demo --force --resource-group team-a'],
  'secret list': ['lockbox secret list', 'lockbox secret list --template openai --label team=ml -o yaml', 'lockbox secret list --all --resource-group team-a'],
  'secret history': ['lockbox secret history demo'],
  'secret restore': ['lockbox secret restore demo 1', 'lockbox secret restore demo 1 --expected-version 3'],
  'secret apply': ['lockbox secret apply -f secrets.yaml', 'cat secrets.json | lockbox secret apply -f - --resource-group team-a'],
  apply: ['lockbox apply -f secrets.yaml', 'lockbox apply -f secrets.yaml --resource-group team-a -o json'],
  key: ['lockbox key rotate', 'lockbox key list', 'lockbox key rotate-root --new-root-key-file /secure/root-2.key --generate'],
  'key rotate': ['lockbox key rotate'],
  'key rotate-root': [
    'lockbox key rotate-root --new-root-key-file /secure/root-2.key --generate',
    'lockbox key rotate-root --new-root-key-file new-root.key   # a key you made: head -c 32 /dev/urandom | base64',
  ],
  'key list': ['lockbox key list -o json'],
  status: ['lockbox status demo', 'lockbox status openai --resource-group team-a -o json'],
  token: ['lockbox token create --role reader --ttl 24h > reader.token', 'lockbox token list'],
  'token create': [
    'lockbox token create --role rg-admin --resource-group team-a --description "team A admin"',
    'lockbox token create --role agent --deployment app --deployment-resource-group team-a --ttl 24h > agent.token',
  ],
  'token list': ['lockbox token list', 'lockbox token list -o json'],
  'token revoke': ['lockbox token revoke 3f2c9a1b7d5e4f60'],
  deployment: ['lockbox deployment create app --secret openai --secret hf --resource-group team-a', 'lockbox deployment list'],
  'deployment create': ['lockbox deployment create app --secret openai --secret hf --resource-group team-a'],
  'deployment update': ['lockbox deployment update app --secret openai --resource-group team-a'],
  'deployment apply': ['lockbox deployment apply -f bentodeploy.yaml --resource-group team-a'],
  'deployment get': ['lockbox deployment get app --resource-group team-a'],
  'deployment list': ['lockbox deployment list --resource-group team-a -o json'],
  'deployment delete': ['lockbox deployment delete app --resource-group team-a'],
  audit: ['lockbox audit list --action secret.read', 'lockbox audit head', 'lockbox audit verify'],
  'audit list': ['lockbox audit list --action secret.read', 'lockbox audit list --target demo --limit 50 -o json'],
  'audit head': ['lockbox audit head >> audit-heads.txt'],
  'audit verify': ['lockbox audit verify', 'lockbox audit verify --head "$KEPT_HEAD"', 'lockbox audit verify --file audit-2026-01.jsonl --public-key "$AUDIT_PUBLIC_KEY"'],
  'audit export': ['lockbox audit export --since 2026-01-01 -f audit-2026-01.jsonl', 'lockbox audit export --since 720h > last-30-days.jsonl'],
  'audit prune': ['lockbox audit prune --before 2160h', 'lockbox audit prune --before 2026-01-01 -o json'],
  backup: ['lockbox backup -f lockbox-$(date +%F).db'],
  completion: ['source <(lockbox completion bash)', 'source <(lockbox completion zsh)', 'lockbox completion fish > ~/.config/fish/completions/lockbox.fish'],
};

/** The command's path below the program: `secret create`, or '' for the program. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Every command of the program, the program first (commander's implicit `help` is not a Command). */
export function allCommands(program: Command): Command[] {
  return [program, ...program.commands.flatMap((c) => allCommands(c))];
}

/** Appends "Examples:" to the help of every command that has an entry. */
export function addExamples(program: Command): void {
  for (const command of allCommands(program)) {
    const lines = examples[commandPath(command)];
    if (lines) command.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
  }
}

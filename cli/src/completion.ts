/**
 * `lockbox completion bash|zsh|fish`: shell completion generated from the program's own command
 * tree, so it never drifts from the commands and flags that exist.
 *
 * 1. Walk the tree into a model: per command path (`''`, `secret`, `secret create`), its
 *    subcommands and flags (its own and the program's global ones, which commander accepts
 *    anywhere); per flag, whether it takes a value and which values it allows.
 * 2. Each script finds the command path the way commander parses it: words that name a
 *    subcommand of the path so far extend it, a flag that takes a value skips the next word.
 * 3. It then offers the previous flag's choices, or files after a flag that takes a value, or
 *    the path's flags after `-`, or its subcommands.
 * bash gets case tables (no associative arrays, so bash 3 and zsh's bashcompinit run it too);
 * zsh runs the bash script through bashcompinit; fish gets `complete` lines with descriptions.
 */
import type { Command, Option } from 'commander';
import { allCommands, commandPath } from './help-examples.js';

interface Flag {
  names: string[];
  takesValue: boolean;
  choices: string[];
  description: string;
}

interface Model {
  paths: Array<{ path: string; subs: Array<{ name: string; description: string }>; flags: Flag[] }>;
  valueFlags: string[];
  choices: Map<string, string[]>;
}

export const shells = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof shells)[number];

function flagOf(option: Option): Flag {
  return {
    names: [option.long, option.short].filter((n): n is string => Boolean(n)),
    takesValue: option.required || option.optional,
    choices: option.argChoices ?? [],
    description: option.description,
  };
}

const helpFlag: Flag = { names: ['--help', '-h'], takesValue: false, choices: [], description: 'display help for command' };

/** (1) */
function modelOf(program: Command): Model {
  const globals = program.options.filter((o) => !o.hidden).map(flagOf);
  const paths = allCommands(program).map((command) => ({
    path: commandPath(command),
    // Subcommands, or the values a first argument with choices takes (`completion bash`).
    subs: [
      ...command.commands.map((c) => ({ name: c.name(), description: c.description() })),
      ...(command.registeredArguments[0]?.argChoices ?? []).map((name) => ({ name, description: command.registeredArguments[0].description })),
    ],
    flags: [...(command === program ? [] : command.options.filter((o) => !o.hidden).map(flagOf)), ...globals, helpFlag],
  }));
  const all = paths.flatMap((p) => p.flags);
  const valueFlags = [...new Set(all.filter((f) => f.takesValue).flatMap((f) => f.names))].sort();
  const choices = new Map<string, string[]>();
  for (const f of all) if (f.choices.length > 0) for (const name of f.names) choices.set(name, f.choices);
  return { paths, valueFlags, choices };
}

function bash(model: Model): string {
  const cases = (rows: Array<[string, string]>) => rows.map(([key, words]) => `    '${key}') echo "${words}" ;;`).join('\n');
  return `# lockbox completion for bash (and zsh through bashcompinit): source <(lockbox completion bash)
_lockbox_subs() {
  case "$1" in
${cases(model.paths.map((p) => [p.path, p.subs.map((s) => s.name).join(' ')]))}
  esac
}
_lockbox_flags() {
  case "$1" in
${cases(model.paths.map((p) => [p.path, p.flags.flatMap((f) => f.names).join(' ')]))}
  esac
}
_lockbox_choices() {
  case "$1" in
${cases([...model.choices].map(([flag, values]) => [flag, values.join(' ')]))}
  esac
}
_lockbox_takes_value() {
  case "$1" in
    ${model.valueFlags.join('|')}) return 0 ;;
  esac
  return 1
}
_lockbox_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" path="" word i
  (( COMP_CWORD > 0 )) && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  for (( i = 1; i < COMP_CWORD; i++ )); do
    word="\${COMP_WORDS[i]}"
    if _lockbox_takes_value "$word"; then (( i++ )); continue; fi
    case " $(_lockbox_subs "$path") " in
      *" $word "*) [[ $word == -* ]] || path="\${path:+$path }$word" ;;
    esac
  done
  local choices
  choices="$(_lockbox_choices "$prev")"
  if [[ -n $choices ]]; then
    COMPREPLY=($(compgen -W "$choices" -- "$cur"))
  elif _lockbox_takes_value "$prev"; then
    COMPREPLY=($(compgen -f -- "$cur"))
  elif [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_lockbox_flags "$path")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_lockbox_subs "$path")" -- "$cur"))
  fi
}
complete -F _lockbox_complete lockbox
`;
}

function zsh(model: Model): string {
  return `# lockbox completion for zsh: source <(lockbox completion zsh)
autoload -U +X compinit && { (( $+functions[compdef] )) || compinit; }
autoload -U +X bashcompinit && bashcompinit
${bash(model).split('\n').slice(1).join('\n')}`;
}

const fishQuote = (text: string) => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function fish(model: Model): string {
  const lines = [
    '# lockbox completion for fish: lockbox completion fish > ~/.config/fish/completions/lockbox.fish',
    'function __lockbox_subs',
    '    switch "$argv[1]"',
    ...model.paths.map((p) => `        case ${fishQuote(p.path)}\n            string join \\n -- ${p.subs.map((s) => s.name).join(' ')}`),
    '    end',
    'end',
    'function __lockbox_path',
    '    set -l path ""',
    '    set -l skip 0',
    '    for word in (commandline -opc)[2..-1]',
    '        if test $skip = 1',
    '            set skip 0',
    '            continue',
    '        end',
    `        if contains -- $word ${model.valueFlags.join(' ')}`,
    '            set skip 1',
    '            continue',
    '        end',
    '        if contains -- $word (__lockbox_subs "$path")',
    '            set path (string trim -- "$path $word")',
    '        end',
    '    end',
    '    echo $path',
    'end',
    'function __lockbox_at',
    '    test (__lockbox_path) = "$argv[1]"',
    'end',
    'complete -c lockbox -f',
  ];
  for (const p of model.paths) {
    const at = `-n ${fishQuote(`__lockbox_at ${fishQuote(p.path)}`)}`;
    for (const s of p.subs) lines.push(`complete -c lockbox ${at} -a ${s.name} -d ${fishQuote(s.description)}`);
    for (const f of p.flags) {
      const names = f.names.map((n) => (n.startsWith('--') ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`)).join(' ');
      const value = f.choices.length > 0 ? ` -x -a ${fishQuote(f.choices.join(' '))}` : f.takesValue ? ' -r -F' : '';
      lines.push(`complete -c lockbox ${at} ${names}${value} -d ${fishQuote(f.description)}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** The completion script for a shell. (2) (3) */
export function completionScript(program: Command, shell: Shell): string {
  const model = modelOf(program);
  return { bash, zsh, fish }[shell](model);
}

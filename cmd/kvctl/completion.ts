/**
 * kvctl completion bash|zsh: a completion script generated from the command
 * tree itself (commands, aliases, options, the choices of options and
 * arguments), so it names exactly what the parser accepts and cannot drift.
 *
 * The script is tables (shell `case` functions keyed by the command path,
 * e.g. "lease grant") and a small driver per shell that walks the words typed
 * so far: options are skipped (with their value when they take one), command
 * names descend the tree, and the word under the cursor is completed with the
 * options, the subcommands, an option's choices or a file name.
 */
import { Argument, type Command } from 'commander';
import { type CommandContext, EXIT_OK } from './common.js';

export const SHELLS = ['bash', 'zsh'] as const;
export type Shell = (typeof SHELLS)[number];

/** Options whose value is a file name: completed with files. */
const FILE_OPTIONS = new Set(['--file', '--cacert', '--cert', '--key']);

interface Node {
  path: string;
  cmd: Command;
}

/** Every command with its path from the program ("" for the program itself), depth first. */
export function commandPaths(program: Command): Node[] {
  const out: Node[] = [];
  const walk = (cmd: Command, path: string) => {
    out.push({ path, cmd });
    for (const sub of cmd.commands) walk(sub, path === '' ? sub.name() : `${path} ${sub.name()}`);
  };
  walk(program, '');
  return out;
}

const flagsOf = (cmd: Command) =>
  cmd.options.filter((o) => !o.hidden).flatMap((o) => [o.short, o.long].filter(isString));
const isString = (s: string | undefined): s is string => typeof s === 'string';
/** Single-quoted for the shell. */
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const words = (list: string[]) => quote(list.join(' '));

/** The shell functions both scripts share: plain `case` tables, valid in bash and zsh. */
function tables(program: Command): string {
  const nodes = commandPaths(program);
  const globalFlags = flagsOf(program).concat('-h', '--help');
  const sub: string[] = [];
  const resolve: string[] = [];
  const opts: string[] = [];
  const takesValue = new Set<string>();
  const choices: string[] = [];
  const argChoices: string[] = [];
  for (const o of program.options) {
    if (o.required || o.optional)
      for (const f of [o.short, o.long].filter(isString)) takesValue.add(f);
  }
  for (const { path, cmd } of nodes) {
    const children = cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]);
    if (children.length) sub.push(`    ${quote(path)}) echo ${words(children)} ;;`);
    for (const c of cmd.commands)
      for (const name of [c.name(), ...c.aliases()])
        resolve.push(`    ${quote(`${path}|${name}`)}) echo ${quote(c.name())} ;;`);
    if (path !== '') opts.push(`    ${quote(path)}) echo ${words(flagsOf(cmd))} ;;`);
    for (const o of cmd.options) {
      const flags = [o.short, o.long].filter(isString);
      if (path !== '' && (o.required || o.optional))
        for (const f of flags) takesValue.add(`${path}|${f}`);
      if (o.argChoices)
        for (const f of flags)
          choices.push(
            `    ${quote(`${path === '' ? '*' : path}|${f}`)}) echo ${words(o.argChoices)} ;;`,
          );
    }
    const argumentChoices = cmd.registeredArguments.flatMap((a: Argument) => a.argChoices ?? []);
    if (argumentChoices.length)
      argChoices.push(`    ${quote(path)}) echo ${words(argumentChoices)} ;;`);
  }
  return [
    '# The command tree (generated from kvctl; regenerate after upgrading kvctl).',
    '_kvctl_subcommands() {',
    '  case "$1" in',
    ...sub,
    '  esac',
    '}',
    '# The command a name (or alias) stands for under a path.',
    '_kvctl_resolve() {',
    '  case "$1|$2" in',
    ...resolve,
    '  esac',
    '}',
    '# The options of a command; the global options are valid everywhere.',
    '_kvctl_options() {',
    `  echo ${words(globalFlags)}`,
    '  case "$1" in',
    ...opts,
    '  esac',
    '}',
    '# Whether an option takes a value (the next word).',
    '_kvctl_takes_value() {',
    '  case "$2" in',
    `    ${[...takesValue]
      .filter((f) => !f.includes('|'))
      .map(quote)
      .join('|')}) return 0 ;;`,
    '  esac',
    '  case "$1|$2" in',
    `    ${
      [...takesValue]
        .filter((f) => f.includes('|'))
        .map(quote)
        .join('|') || "''"
    }) return 0 ;;`,
    '  esac',
    '  return 1',
    '}',
    '# An option\'s choices ("*": a global option).',
    '_kvctl_choices() {',
    '  case "$1|$2" in',
    ...choices.map((c) => c.replace(/^ {4}'\*\|/, "    *'|")),
    '  esac',
    '}',
    "# The choices of a command's arguments.",
    '_kvctl_argument_choices() {',
    '  case "$1" in',
    ...argChoices,
    '  esac',
    '}',
    `_kvctl_file_option() {`,
    '  case "$1" in',
    `    ${[...FILE_OPTIONS].map(quote).join('|')}) return 0 ;;`,
    '  esac',
    '  return 1',
    '}',
    '# The command path of words[first..last] (options and their values skipped).',
    '_kvctl_path() {',
    '  local cpath="" i w name',
    '  i=$1',
    '  while [ "$i" -lt "$2" ]; do',
    `    eval "w=\\\${$3[$i]}"`,
    '    case "$w" in',
    '      --) break ;;',
    '      -*) case "$w" in *=*) ;; *) if _kvctl_takes_value "$cpath" "$w"; then i=$((i + 1)); fi ;; esac ;;',
    '      *) name=$(_kvctl_resolve "$cpath" "$w")',
    `         if [ -n "$name" ]; then cpath="\${cpath:+$cpath }$name"; fi ;;`,
    '    esac',
    '    i=$((i + 1))',
    '  done',
    '  echo "$cpath"',
    '}',
    '# The candidates for the word under the cursor: a list of words, or "FILES".',
    '_kvctl_candidates() {',
    '  local cpath=$1 prev=$2 cur=$3 list',
    '  if _kvctl_takes_value "$cpath" "$prev"; then',
    '    list=$(_kvctl_choices "$cpath" "$prev")',
    '    [ -z "$list" ] && list=$(_kvctl_choices "*" "$prev")',
    '    if [ -n "$list" ]; then echo "$list"; elif _kvctl_file_option "$prev"; then echo FILES; fi',
    '    return',
    '  fi',
    '  case "$cur" in',
    '    -*) _kvctl_options "$cpath" ;;',
    '    *) list=$(_kvctl_subcommands "$cpath")',
    '       [ -z "$list" ] && list=$(_kvctl_argument_choices "$cpath")',
    '       echo "$list" ;;',
    '  esac',
    '}',
  ].join('\n');
}

function bashScript(program: Command): string {
  return [
    '# kvctl completion for bash. Load it with:',
    '#   source <(kvctl completion bash)',
    '# or install it: kvctl completion bash > /etc/bash_completion.d/kvctl',
    tables(program),
    '_kvctl() {',
    `  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} cpath list`,
    '  cpath=$(_kvctl_path 1 "$COMP_CWORD" COMP_WORDS)',
    '  list=$(_kvctl_candidates "$cpath" "$prev" "$cur")',
    '  if [ "$list" = FILES ]; then',
    '    COMPREPLY=($(compgen -f -- "$cur"))',
    '  else',
    '    COMPREPLY=($(compgen -W "$list" -- "$cur"))',
    '  fi',
    '}',
    'complete -o default -F _kvctl kvctl',
    '',
  ].join('\n');
}

function zshScript(program: Command): string {
  return [
    '#compdef kvctl',
    '# kvctl completion for zsh. Load it with:',
    '#   source <(kvctl completion zsh)',
    '# or install it as _kvctl in a directory of $fpath, e.g.:',
    `#   kvctl completion zsh > "\${fpath[1]}/_kvctl"`,
    tables(program),
    '_kvctl() {',
    `  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]} cpath list`,
    '  cpath=$(_kvctl_path 2 "$CURRENT" words)',
    '  list=$(_kvctl_candidates "$cpath" "$prev" "$cur")',
    '  if [ "$list" = FILES ]; then',
    '    _files',
    '  else',
    `    compadd -- \${=list}`,
    '  fi',
    '}',
    'if [ "$funcstack[1]" = _kvctl ]; then',
    '  _kvctl "$@"',
    'else',
    '  compdef _kvctl kvctl',
    'fi',
    '',
  ].join('\n');
}

export function completionScript(program: Command, shell: Shell): string {
  return shell === 'bash' ? bashScript(program) : zshScript(program);
}

export function register(program: Command, _ctx: CommandContext): void {
  program
    .command('completion')
    .description('print a shell completion script (see --help for how to load it)')
    .addArgument(new Argument('<shell>', SHELLS.join('|')).choices(SHELLS))
    .addHelpText(
      'after',
      '\nbash: source <(kvctl completion bash)   (or save it in /etc/bash_completion.d/kvctl)\n' +
        'zsh:  source <(kvctl completion zsh)    (or save it as _kvctl in a directory of $fpath)',
    )
    .action((shell: Shell) => {
      process.stdout.write(completionScript(program, shell));
      process.exitCode = EXIT_OK;
    });
}

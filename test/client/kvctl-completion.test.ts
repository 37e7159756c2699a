/**
 * kvctl completion bash|zsh: generated from the command tree, so every
 * registered command and option is in it; the bash script parses (`bash -n`)
 * and completes as a user would see it, and so does the zsh script where zsh
 * exists (.ci/run installs it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import t from 'tap';
import { commandPaths, completionScript } from '../../cmd/kvctl/completion.js';
import { buildProgram } from '../../cmd/kvctl/program.js';

const program = buildProgram();
const bash = completionScript(program, 'bash');
const zsh = completionScript(program, 'zsh');
const has = (shell: string) => spawnSync(shell, ['-c', 'exit 0']).status === 0;

t.test('every registered command, alias and option is in both scripts', async (t) => {
  for (const { path, cmd } of commandPaths(program)) {
    if (path === '') continue;
    const parent = path.split(' ').slice(0, -1).join(' ');
    for (const script of [bash, zsh]) {
      for (const name of [cmd.name(), ...cmd.aliases()])
        t.ok(script.includes(`'${parent}|${name}') echo '${cmd.name()}'`), `${path} (${name})`);
      for (const o of cmd.options.filter((o) => !o.hidden))
        t.match(script, new RegExp(`'${path}'\\) echo '[^']*${o.long}\\b`), `${path} ${o.long}`);
    }
  }
});

t.test('bash -n accepts the bash script', { skip: !has('bash') && 'no bash here' }, async (t) => {
  const r = spawnSync('bash', ['-n'], { input: bash, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
});

t.test('zsh -n accepts the zsh script', { skip: !has('zsh') && 'no zsh here' }, async (t) => {
  const r = spawnSync('zsh', ['-n'], { input: zsh, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
});

/** What bash offers for the words after `kvctl` (the last one being completed). */
function complete(words: string[]): string[] {
  const script = `${bash}
COMP_WORDS=(kvctl ${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length}
_kvctl
printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['-c', script], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

t.test(
  'bash completes commands, options and choices',
  { skip: !has('bash') && 'no bash here' },
  async (t) => {
    t.same(complete(['lease', 'g']), ['grant', 'get']);
    t.same(complete(['del']), ['del', 'delete']);
    t.same(complete(['-o', '']), ['table', 'json'], "a global option's choices");
    t.same(complete(['get', 'k', '--consistency', '']), ['linearizable', 'serializable']);
    t.same(complete(['completion', '']), ['bash', 'zsh'], "an argument's choices");
    t.ok(
      complete(['--endpoints', 'http://h:1', 'lock', 'j', '--']).includes('--wait-timeout'),
      'a value of a global option is skipped on the way to the command',
    );
    t.ok(complete(['lock', 'j', '--']).includes('--request-timeout'), 'global options everywhere');
    t.notOk(complete(['lock', 'j', '--']).includes('--timeout'), 'the old name is not offered');
  },
);

/**
 * What the zsh script hands to compadd for the words after `kvctl` (zsh
 * itself then keeps those that start with the word being completed), run in
 * a plain zsh with compadd, _files and compdef stood in for.
 */
function completeZsh(words: string[]): string[] {
  const script = `compdef() {}
compadd() { [ "$1" = -- ] && shift; print -l -- "$@" }
_files() { print '<files>' }
${zsh}
words=(kvctl ${words.map((w) => `'${w}'`).join(' ')})
CURRENT=${words.length + 1}
_kvctl`;
  return execFileSync('zsh', ['-c', script], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

t.test(
  'zsh completes commands, options, choices and files',
  { skip: !has('zsh') && 'no zsh here' },
  async (t) => {
    t.same(
      completeZsh(['lease', 'g']),
      ['grant', 'keepalive', 'revoke', 'get', 'ls', 'list'],
      'the subcommands, for zsh to match against "g"',
    );
    t.same(completeZsh(['-o', '']), ['table', 'json'], "a global option's choices");
    t.same(completeZsh(['get', 'k', '--consistency', '']), ['linearizable', 'serializable']);
    t.same(completeZsh(['completion', '']), ['bash', 'zsh'], "an argument's choices");
    const lock = completeZsh(['--endpoints', 'http://h:1', 'lock', 'j', '--']);
    t.ok(lock.includes('--wait-timeout'), 'a value of a global option is skipped');
    t.ok(lock.includes('--request-timeout'), 'global options everywhere');
    t.notOk(lock.includes('--timeout'), 'the old name is not offered');
    t.same(completeZsh(['put', 'k', '--file', '']), ['<files>'], 'a file option completes files');
  },
);

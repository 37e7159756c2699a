import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { brokenMutants, MUTANTS, occurrences, parseSimOutput } from './mutants.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

t.test('every planted bug of the mutation table still applies to the code', async (t) => {
  // A refactor that moves a mutant's text must update the table, not neuter it silently.
  t.same(brokenMutants(MUTANTS, root), []);
  t.ok(MUTANTS.length >= 9, `${MUTANTS.length} mutants`);
  t.ok(
    MUTANTS.filter((m) => m.file.startsWith('src/server/')).length >= 3,
    'at least three in the node core or the lease keeper',
  );
});

t.test('a find text that is missing, repeated or empty is reported', async (t) => {
  const m = { id: 'x', what: 'x', file: 'src/raft/log.ts', find: 'commitTo(', replace: 'y' };
  t.match(brokenMutants([m], root), [/occurs \d+ times/], 'repeated');
  t.match(brokenMutants([{ ...m, find: 'no such text anywhere' }], root), [/occurs 0 times/]);
  t.match(brokenMutants([{ ...m, file: 'src/nope.ts' }], root), [/does not exist/]);
  t.match(brokenMutants([MUTANTS[0]!, MUTANTS[0]!], root), [/duplicate id/]);
  t.equal(occurrences('abcabc', ''), Number.POSITIVE_INFINITY);
  t.equal(occurrences('aaaa', 'aa'), 2);
});

t.test("the simulator's verdict is read from its output and exit code", async (t) => {
  t.match(
    parseSimOutput('simulating…\nVIOLATION of leader-completeness after 31 run(s)\n', 1, 300),
    {
      kind: 'caught',
      property: 'leader-completeness',
      runs: 31,
    },
  );
  t.match(parseSimOutput('took 3 s\n300 runs, 0 violations\n', 0, 300), {
    kind: 'survived',
    runs: 300,
  });
  t.match(
    parseSimOutput('SyntaxError: nope\n', 1, 300),
    { kind: 'error' },
    'a crash is not a catch',
  );
  t.match(
    parseSimOutput('200 runs, 0 violations\n', 0, 300),
    { kind: 'error' },
    'fewer runs than asked',
  );
});

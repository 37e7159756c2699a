/**
 * src/kv must stay a pure, deterministic state machine: no I/O, no clock, no
 * timers, no randomness, and no imports from outside src/kv.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/kv');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const FORBIDDEN: [RegExp, string][] = [
  [/from\s+['"]node:|require\(|import\(/, 'a node:/dynamic import'],
  [/\bDate\b/, 'Date'],
  [/Math\.random|crypto\./, 'randomness'],
  [/\bset(Timeout|Interval|Immediate)\b|queueMicrotask|process\.nextTick/, 'timers'],
  [/\bperformance\b|\bprocess\b/, 'process or clock access'],
];

t.test('no I/O, clock, timers or randomness in src/kv', (t) => {
  const files = sources(root);
  t.ok(files.length > 10, `${files.length} files checked`);
  for (const file of files) {
    // Comments may mention what the code must not do.
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    for (const [pattern, what] of FORBIDDEN) {
      t.notOk(pattern.test(code), `${relative(root, file)}: no ${what}`);
    }
    for (const [, specifier] of code.matchAll(/from\s+['"]([^'"]+)['"]/g)) {
      const target = specifier!.startsWith('.') ? resolve(dirname(file), specifier!) : specifier!;
      t.ok(target.startsWith(root), `${relative(root, file)} imports only src/kv (${specifier})`);
    }
  }
  t.end();
});

// `npm ci` in a checkout runs this (package.json "prepare"): afterwards `npx kvctl …` and
// `npx raftkv …` run the TypeScript in cmd/ through tsx. npm links the bins of dependencies
// only, never the project's own. An installed package (npm install -g of the packed tarball)
// runs the compiled dist/cmd/*.js that package.json "bin" names instead.
// Plain JavaScript: it runs before anything is built.
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let loader;
try {
  loader = import.meta.resolve('tsx');
} catch {
  // Installed without dev dependencies (a production image): dist/ serves, nothing to link.
  process.exit(0);
}
if (!existsSync(join(root, 'cmd', 'kvctl.ts'))) process.exit(0);

const binDir = join(root, 'node_modules', '.bin');
mkdirSync(binDir, { recursive: true });
for (const name of ['kvctl', 'raftkv']) {
  const file = join(binDir, name);
  const script = join(root, 'cmd', `${name}.ts`);
  writeFileSync(
    file,
    `#!/bin/sh\n# Written by scripts/link-bins.mjs at npm ci: ${name} from this checkout's TypeScript.\nexec node --import '${loader}' '${script}' "$@"\n`,
  );
  chmodSync(file, 0o755);
}

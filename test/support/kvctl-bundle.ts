/**
 * kvctl for the tests that run it as a child process: cmd/kvctl.ts bundled
 * once per test process with esbuild (what tsx itself runs on), so that each
 * start is plain node, about 0.25 s of CPU instead of 0.6 s under the tsx
 * loader: the kvctl tests start a few hundred of them. It is built from the
 * current sources at every run (never stale), into node_modules/.cache so
 * that its imports resolve, one file per process, removed at exit.
 */
import { bundleCommand } from './bundle-command.js';

let bundle: string | undefined;

/** The path of the bundled kvctl: run it as `node <path> ARGS`. */
export function kvctlBundle(): string {
  bundle ??= bundleCommand('kvctl', 'kvctl');
  return bundle;
}

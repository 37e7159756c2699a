/**
 * raftkv for the tests that run it as a child process in a given version:
 * cmd/raftkv.ts bundled with esbuild from the current sources, once per test
 * process and version. A `version` other than this build's is a simulated
 * release: esbuild's `define` sets `__RAFTKV_VERSION__`, which is the only
 * thing src/server/cluster-version.ts reads to decide the version a build
 * runs, and with it the commands the build knows (its table). Nothing else in
 * the sources differs, so the test runs the real code paths of both versions.
 * Built into node_modules/.cache so that its imports resolve; removed at exit.
 */
import { bundleCommand } from './bundle-command.js';

const bundles = new Map<string, string>();

/** The path of a bundled raftkv running as `version` (default: this build's): `node <path> ARGS`. */
export function raftkvBundle(version?: string): string {
  const key = version ?? 'build';
  const built = bundles.get(key);
  if (built !== undefined) return built;
  if (version !== undefined && !/^\d+\.\d+\.\d+$/.test(version))
    throw new Error(`not a version: ${version}`);
  const outfile = bundleCommand(
    'raftkv',
    `raftkv-${key}`,
    version !== undefined ? { __RAFTKV_VERSION__: JSON.stringify(version) } : undefined,
  );
  bundles.set(key, outfile);
  return outfile;
}

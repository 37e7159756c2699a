/** Set only by a bundler's define (test/support/raftkv-bundle.ts builds a simulated next version). */
declare const __RAFTKV_VERSION__: string | undefined;

/**
 * The version of this raftkv build: what a member reports in /v1/status and
 * what `kvctl --version` prints. The one place it is written (package.json's
 * "version" must agree; a test checks). A bundle built with esbuild's
 * `define: {__RAFTKV_VERSION__: '"0.2.0"'}` runs as that version instead, and
 * with it knows the commands cluster-version.ts's table gives 0.2.0: that is
 * how the upgrade test simulates the next release from these sources.
 */
export const VERSION: string =
  typeof __RAFTKV_VERSION__ === 'string' ? __RAFTKV_VERSION__ : '0.1.0';

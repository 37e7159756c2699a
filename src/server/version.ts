/**
 * The version of this raftkv build: what a member reports in /v1/status and
 * what `kvctl --version` prints. The one place it is written (package.json's
 * "version" must agree; a test checks).
 */
export const VERSION = '0.1.0';

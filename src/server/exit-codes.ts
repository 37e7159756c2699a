/**
 * The raftkv command's exit codes: what a supervisor (systemd, Kubernetes)
 * or an operator can tell apart without reading the log.
 */
/** Stopped as asked (SIGTERM, SIGINT). */
export const EXIT_OK = 0;
/** Could not start or run: a bad flag or configuration, a data dir problem, a port in use, a failed disk. */
export const EXIT_FAILURE = 1;
/** A log entry needs a newer raftkv than this member runs: upgrade this member. */
export const EXIT_UPGRADE_NEEDED = 3;
/** This member was removed from the cluster: its data dir cannot serve again. */
export const EXIT_REMOVED = 4;

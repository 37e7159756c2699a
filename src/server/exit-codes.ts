/**
 * The exit codes of `raftkv`, in one place so that operators (and systemd or
 * Kubernetes restart policies) can tell why a member stopped. 0 is a clean
 * stop, 1 an unexpected failure, 2 a usage error (a bad flag or value).
 */

/** The member met a committed entry only a newer raftkv understands: upgrade it, then restart. */
export const EXIT_UPGRADE_NEEDED = 3;

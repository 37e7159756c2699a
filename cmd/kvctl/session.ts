/**
 * What the long-running commands share (`lease keepalive`, `registry
 * register`, `lock`, `elect`): a lease kept alive for the command's life and
 * revoked at its end, waiting for SIGINT/SIGTERM, and how a lost lease is
 * reported (exit 3, with the reason).
 */
import { spawn } from 'node:child_process';
import {
  type Client,
  isRaftkvError,
  type LeaseKeeper,
  RaftkvError,
} from '../../src/client/index.js';
import { EXIT_OK, EXIT_UNAVAILABLE, note } from './common.js';

/** --ttl's default for the leases kvctl grants itself, in seconds. */
export const DEFAULT_LEASE_TTL = 10;

/**
 * Resolves with the signal's name on SIGINT or SIGTERM (a ref'd timer keeps
 * the process alive meanwhile); dispose() removes the handlers.
 */
export function interrupted(): { promise: Promise<NodeJS.Signals>; dispose(): void } {
  let resolve!: (signal: NodeJS.Signals) => void;
  const promise = new Promise<NodeJS.Signals>((r) => {
    resolve = r;
  });
  const onInt = () => resolve('SIGINT');
  const onTerm = () => resolve('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const hold = setInterval(() => {}, 1 << 30);
  return {
    promise,
    dispose() {
      clearInterval(hold);
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
    },
  };
}

/** Holds until interrupted (exit 0) or until the lease is lost (exit 3, with the reason). */
export async function holdUntilInterruptedOrLost(
  stop: { promise: Promise<NodeJS.Signals> },
  lost: Promise<RaftkvError>,
): Promise<number> {
  const outcome = await Promise.race([stop.promise, lost]);
  if (outcome instanceof RaftkvError) {
    note(lostMessage(outcome));
    return EXIT_UNAVAILABLE;
  }
  return EXIT_OK;
}

/** A lease kept alive for the duration of a command, revoked at the end. */
export async function heldLease(
  client: Client,
  ttl: number,
): Promise<{ id: string; keeper: LeaseKeeper; release(): Promise<void> }> {
  const grant = await client.grantLease(ttl);
  const keeper = client.keepLeaseAlive(grant.id, { ttlSeconds: grant.ttl });
  return {
    id: grant.id,
    keeper,
    async release() {
      await keeper.stop();
      try {
        await client.revokeLease(grant.id);
      } catch (err) {
        if (!isRaftkvError(err, 'lease_not_found')) throw err;
      }
    },
  };
}

export function lostMessage(err: RaftkvError): string {
  return `error: lease lost: ${err.code}: ${err.message}`;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** Runs `command` with `env` until it exits; SIGTERMs it when `stop` resolves first. Its exit code. */
export function runCommand(
  command: string[],
  env: Record<string, string>,
  stop: Promise<unknown>,
): Promise<number> {
  return new Promise<number>((resolve) => {
    const child = spawn(command[0]!, command.slice(1), {
      stdio: 'inherit',
      env: { ...process.env, ...env },
    });
    let done = false;
    child.on('error', (err) => {
      if (done) return;
      done = true;
      note(`error: cannot run ${command[0]}: ${err.message}`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      if (done) return;
      done = true;
      resolve(code ?? 128 + (signal ? (SIGNAL_NUMBERS[signal] ?? 1) : 1));
    });
    void stop.then(() => {
      if (!done) child.kill('SIGTERM');
    });
  });
}

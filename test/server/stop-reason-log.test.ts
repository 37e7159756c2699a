/**
 * logStop: the line that says why a member stops, with a stable
 * `event: "stopping"` and reason, at a level that matches it.
 */
import t from 'tap';
import { logStop } from '../../src/server/event-log.js';
import { createLogger } from '../../src/server/logger.js';
import type { LogLine } from '../support/log-capture.js';

function capture() {
  const lines: LogLine[] = [];
  const log = createLogger({
    member: 'n1',
    level: 'info',
    destination: { write: (s: string) => lines.push(JSON.parse(s) as LogLine) },
  });
  return { log, lines };
}

t.test('a signal is an info line naming the signal', async (t) => {
  const { log, lines } = capture();
  logStop(log, 'signal', { signal: 'SIGTERM' });
  t.match(lines, [
    {
      level: 'info',
      event: 'stopping',
      reason: 'signal',
      signal: 'SIGTERM',
      msg: 'stopping: received SIGTERM',
    },
  ]);
});

t.test('a fatal error is a fatal line with the error and the exit code', async (t) => {
  const { log, lines } = capture();
  const err = Object.assign(new Error('writing the log failed: ENOSPC'), { code: 'io_error' });
  logStop(log, 'fatal', { err, exitCode: 1 });
  t.match(lines, [
    {
      level: 'fatal',
      event: 'stopping',
      reason: 'fatal',
      exitCode: 1,
      err: { message: 'writing the log failed: ENOSPC', code: 'io_error' },
      msg: 'stopping: fatal: writing the log failed: ENOSPC',
    },
  ]);
});

t.test('a removal is a warning; an upgrade needed is fatal and says what to do', async (t) => {
  const { log, lines } = capture();
  logStop(log, 'removed', { exitCode: 4 });
  logStop(log, 'upgrade_needed', { message: 'upgrade this member: entry 12 needs a newer raftkv' });
  t.match(lines, [
    { level: 'warn', reason: 'removed', exitCode: 4, msg: 'stopping: removed' },
    {
      level: 'fatal',
      reason: 'upgrade_needed',
      msg: 'upgrade this member: entry 12 needs a newer raftkv',
    },
  ]);
});

/**
 * The logger factory: the level by name, an ISO time and the member in every
 * line, JSON or one readable text line per event.
 */
import t from 'tap';
import { createLogger, formatTextLine } from '../../src/server/logger.js';

function capture(format: 'json' | 'text') {
  const out: string[] = [];
  const log = createLogger({
    member: 'n1',
    level: 'info',
    format,
    destination: { write: (s: string) => out.push(s) },
  });
  return { log, out };
}

t.test('json: level as a name, time in ISO form, the member on every line', async (t) => {
  const { log, out } = capture('json');
  log.info({ event: 'leader_elected', leader: 'n2', term: 3 }, 'leader elected: n2');
  log.child({ component: 'x' }).warn('child lines too');
  t.equal(out.length, 2);
  for (const line of out) {
    t.ok(line.endsWith('\n'));
    const o = JSON.parse(line);
    t.type(o.level, 'string');
    t.match(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    t.equal(o.member, 'n1');
  }
  t.match(JSON.parse(out[0]!), { level: 'info', event: 'leader_elected', leader: 'n2', term: 3 });
  t.equal(JSON.parse(out[1]!).level, 'warn');
});

t.test('text: one line per event, time, level, member, message, then key=value', async (t) => {
  const { log, out } = capture('text');
  log.warn(
    { event: 'leader_lost', leader: 'n2', term: 3, reason: 'timeout', self: false },
    'leader lost: n2 no longer leads term 3',
  );
  t.equal(out.length, 1);
  t.match(
    out[0],
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN {2}n1: leader lost: n2 no longer leads term 3 {2}event=leader_lost leader=n2 term=3 reason=timeout self=false\n$/,
  );
});

t.test('text: errors as code and message, multi-line values kept on one line', async (t) => {
  const { log, out } = capture('text');
  const err = Object.assign(new Error('disk full\nsecond line'), { code: 'ENOSPC' });
  log.fatal({ event: 'stopping', err }, 'stopping: fatal\nerror');
  t.equal(out.length, 1);
  t.equal(out[0]!.split('\n').length, 2, 'exactly one line');
  t.match(
    out[0],
    /FATAL n1: stopping: fatal\\nerror {2}event=stopping err="ENOSPC: disk full\\nsecond line"/,
  );
});

t.test('text: quotes values with spaces; a line that is not JSON passes as one line', async (t) => {
  t.equal(
    formatTextLine('{"level":"info","time":"T","member":"n1","msg":"m","url":"a b","n":1}'),
    'T INFO  n1: m  url="a b" n=1\n',
  );
  t.equal(formatTextLine('not json\nat all\n'), 'not json\\nat all\n');
});

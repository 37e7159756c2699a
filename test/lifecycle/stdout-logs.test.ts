/**
 * A real `raftkv` process: stdout carries only log lines in the chosen
 * format — JSON objects by default (the "serving" line included), readable
 * text lines with --log-format text (here through RAFTKV_LOG_FORMAT).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort } from '../integration/helpers.js';
import { waitUntil } from '../integration/http-ops.js';
import { cleanEnv, RaftkvProcess, singleNodeArgs } from '../integration/process-cluster.js';

const TEXT_LINE =
  /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) +(\S+): \S/;

async function runUntilLeader(
  t: Test,
  name: string,
  dir: string,
  env: NodeJS.ProcessEnv,
  electedText: string,
): Promise<RaftkvProcess> {
  const args = singleNodeArgs(name, join(dir, name), await freePort(), await freePort());
  const proc = new RaftkvProcess([...args, '--log-level', 'info'], { env });
  t.teardown(() => proc.kill('SIGKILL'));
  await waitUntil(
    `${name} logs its election`,
    () => proc.stdout.includes(electedText) || undefined,
    60_000,
  );
  const exit = await proc.kill('SIGTERM');
  t.equal(exit.code, 0, `${name} stopped on SIGTERM: ${proc.stderr}`);
  return proc;
}

t.test(
  'stdout is only JSON log lines by default, and text lines with --log-format text',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-stdout-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const [json, text] = await Promise.all([
      runUntilLeader(t, 'j1', dir, cleanEnv(), '"event":"leader_elected"'),
      runUntilLeader(t, 't1', dir, { ...cleanEnv(), RAFTKV_LOG_FORMAT: 'text' }, 'leader elected:'),
    ]);

    const jsonLines = json.stdout.split('\n').filter((l) => l !== '');
    t.ok(jsonLines.length >= 3, `${jsonLines.length} lines`);
    const parsed = jsonLines.map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        t.fail(`not a JSON line on stdout: ${line}`);
        return {};
      }
    });
    for (const o of parsed) {
      if (typeof o.level !== 'string' || o.member !== 'j1' || typeof o.time !== 'string')
        t.fail(`line without a level name, member or time: ${JSON.stringify(o)}`);
    }
    const serving = parsed.find((o) => o.event === 'serving');
    t.match(serving, {
      level: 'info',
      version: /^\d+\.\d+\.\d+/,
      clientUrl: /^http:\/\/127\.0\.0\.1:\d+$/,
      peerUrl: /^http:\/\/127\.0\.0\.1:\d+$/,
    });
    t.match(serving?.msg, /member j1 serving clients on http/);
    t.match(
      parsed.find((o) => o.event === 'stopping'),
      { reason: 'signal', signal: 'SIGTERM' },
    );

    const textLines = text.stdout.split('\n').filter((l) => l !== '');
    t.ok(textLines.length >= 3, `${textLines.length} lines`);
    for (const line of textLines) {
      const m = TEXT_LINE.exec(line);
      if (m?.[2] !== 't1') t.fail(`not a text log line of t1: ${line}`);
    }
    t.ok(textLines.some((l) => / INFO +t1: raftkv \S+: member t1 serving clients on http/.test(l)));
    t.ok(textLines.some((l) => /leader elected: this member \(t1\) leads term \d+/.test(l)));
    t.ok(textLines.some((l) => /stopping: received SIGTERM .*signal=SIGTERM/.test(l)));
  },
);

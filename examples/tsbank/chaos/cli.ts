/**
 * npm run example:tsbank -- --chaos [--seconds 60] [--report FILE]
 *
 * Exits 0 when every check held, 1 on any violation, 2 on bad flags or a
 * run that could not get going.
 */
import { parseArgs } from 'node:util';
import { runChaos } from './run.js';

const { values } = parseArgs({
  options: {
    chaos: { type: 'boolean', default: true },
    seconds: { type: 'string', default: '60' },
    report: { type: 'string' },
  },
  strict: true,
});
const seconds = Number(values.seconds);
if (!Number.isSafeInteger(seconds) || seconds < 5 || seconds > 3600) {
  console.error(`--seconds must be an integer from 5 to 3600, got ${values.seconds}`);
  process.exit(2);
}
process.exitCode = await runChaos({
  seconds,
  ...(values.report !== undefined ? { reportFile: values.report } : {}),
});

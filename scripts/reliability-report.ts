/**
 * The figures of docs/reliability.md: runs the reliability suites (their assertions are the
 * tests; here they also count what they did) and prints every suite's counts as table rows.
 *
 *   npm run report:reliability [-- --json]
 *   npm run report:reliability:long [-- --json]     (the long mode: the full sizes of the issue)
 *
 * The scale variables of docs/reliability.md (ISOGROUP_CRASH_TRIALS, …) pass through; `--long`
 * sets the long mode's values of those not set. The suites record their counts only when this
 * script asks them to (ISOGROUP_RELIABILITY_REPORT).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** The long mode (docs/reliability.md): full sizes, minutes instead of seconds. */
const LONG: Record<string, string> = {
  ISOGROUP_CRASH_TRIALS: '400',
  ISOGROUP_PROPERTY_RUNS: '10000',
  ISOGROUP_FUZZ_RUNS: '10000',
  ISOGROUP_FAULT_RUNS: '1000',
  ISOGROUP_POWERCUT_TRIALS: '2000',
  ISOGROUP_PG_COMMANDS: '5000',
  ISOGROUP_SSE_CLIENTS: '1000',
  ISOGROUP_SSE_ENTRIES: '100000',
  ISOGROUP_HTTP_FUZZ: '10000',
};
const scale = process.argv.includes('--long') ? Object.fromEntries(Object.entries(LONG).filter(([k]) => process.env[k] === undefined)) : {};
const dir = mkdtempSync(join(tmpdir(), 'isogroup-reliability-'));
const file = join(dir, 'figures.jsonl');
try {
  const jest = spawnSync(process.execPath, ['--experimental-vm-modules', '--no-warnings=ExperimentalWarning', 'node_modules/jest/bin/jest.js', 'test/reliability'], {
    cwd: root,
    env: { ...process.env, ...scale, ISOGROUP_RELIABILITY_REPORT: file },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (jest.status !== 0) {
    process.stderr.write('the reliability suites failed: no figures\n');
    process.exitCode = 1;
  } else {
    const rows = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { suite: string } & Record<string, number | string>);
    if (process.argv.includes('--json')) for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
    else {
      process.stdout.write('| suite | figure | value |\n|---|---|---:|\n');
      for (const { suite, ...figures } of rows) {
        for (const [k, v] of Object.entries(figures)) process.stdout.write(`| ${suite} | ${k} | ${typeof v === 'number' ? v.toLocaleString('en') : v} |\n`);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

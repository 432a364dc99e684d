/**
 * The figures of docs/reliability.md: runs the reliability suites (their assertions are the
 * tests; here they also count what they did) and prints every suite's counts as table rows.
 *
 *   npm run report:reliability [-- --json]
 *
 * The scale variables of docs/reliability.md (ISOGROUP_CRASH_TRIALS, …) pass through. The suites
 * record their counts only when this script asks them to (ISOGROUP_RELIABILITY_REPORT).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'isogroup-reliability-'));
const file = join(dir, 'figures.jsonl');
try {
  const jest = spawnSync(process.execPath, ['--experimental-vm-modules', '--no-warnings=ExperimentalWarning', 'node_modules/jest/bin/jest.js', 'test/reliability'], {
    cwd: root,
    env: { ...process.env, ISOGROUP_RELIABILITY_REPORT: file },
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

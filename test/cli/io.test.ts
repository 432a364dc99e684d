import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { paint, progressBar, table } from '../../src/cli/io.js';
import { cli, tempDir } from './run.js';

describe('output for people', () => {
  test('a long replay shows a progress bar on a terminal (stderr) and nothing when piped', () => {
    let tty = '';
    const bar = progressBar({ write: (s: string) => (tty += s), isTTY: true }, 'replaying');
    bar(500_000, 1_000_000);
    bar.end();
    expect(tty).toMatch(/replaying \[#+\.+\] 500,000\/1,000,000/);
    let piped = '';
    const quiet = progressBar({ write: (s: string) => (piped += s), isTTY: false }, 'replaying');
    quiet(500_000, 1_000_000);
    quiet.end();
    expect(piped).toBe('');
  });

  test('colours only on a terminal and never with NO_COLOR; tables align columns', () => {
    expect(paint({ write: () => 0, isTTY: true }, {}).red('x')).toBe('\u001b[31mx\u001b[0m');
    expect(paint({ write: () => 0, isTTY: false }, {}).red('x')).toBe('x');
    expect(paint({ write: () => 0, isTTY: true }, { NO_COLOR: '1' }).red('x')).toBe('x');
    expect(table([['a', 'bb'], ['ccc', 'd']], ['h1', 'h2'])).toBe('h1   h2\n---  --\na    bb\nccc  d\n');
  });
});

describe('a reader that leaves early (`isogroup export | head -1`)', () => {
  const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
  const CLI = join(ROOT, 'dist/src/cli/main.js');

  /** Runs the built CLI with stdout on a pipe that is closed after `keep` bytes (0: before anything is written). */
  const closedEarly = (argv: string[], keep: number): Promise<{ code: number | null; stderr: string; read: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      let read = '';
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => void (stderr += d));
      if (keep === 0) child.stdout.destroy();
      else
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          read += d;
          if (read.length >= keep) child.stdout.destroy();
        });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr, read }));
    });

  test('export into a pipe closed after the first line ends quietly with exit 0', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    const storm = await cli(['storm', '--seed', '1', '--steps', '1500']);
    expect((await cli(['--store', store, 'exec', '-'], { stdin: storm.stdout })).code).toBeLessThan(2);
    // Well over a pipe's buffer, so the writer is still writing when the reader goes.
    expect(statSync(join(dir, 'log.jsonl')).size).toBeGreaterThan(256 * 1024);
    const r = await closedEarly(['--store', store, 'export'], 1);
    expect(r.read).toMatch(/^\{"pos":1,/);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  test('--help into a pipe closed before it is written ends quietly with exit 0', async () => {
    const r = await closedEarly(['--help'], 0);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

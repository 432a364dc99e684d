import { describe, expect, test } from '@jest/globals';
import { paint, progressBar, table } from '../../src/cli/io.js';

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

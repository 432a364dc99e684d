/** Runs the CLI in-process with captured output (fast; the binary itself is tested in a few spawn tests). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { run } from '../../src/cli/program.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON lines. */
  json<T = Record<string, unknown>>(): T[];
}

export const tempDir = (): string => mkdtempSync(join(tmpdir(), 'isogroup-test-'));

export const cli = async (argv: string[], options: { stdin?: string; cwd?: string; env?: Record<string, string>; tty?: boolean } = {}): Promise<CliResult> => {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, {
    stdout: { write: (s: string) => (stdout += s), isTTY: options.tty ?? false },
    stderr: { write: (s: string) => (stderr += s), isTTY: options.tty ?? false },
    stdin: Readable.from([options.stdin ?? '']),
    env: { ...options.env },
    cwd: options.cwd ?? process.cwd(),
  });
  return {
    code,
    stdout,
    stderr,
    json: <T>() =>
      stdout
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as T),
  };
};

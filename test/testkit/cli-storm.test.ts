import { describe, expect, test } from '@jest/globals';
import { Readable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { registerStorm } from '../../src/cli/commands/storm.js';
import { createContext, type GlobalOptions } from '../../src/cli/context.js';
import { CliError, type Io } from '../../src/cli/io.js';
import type { App } from '../../src/cli/program.js';
import { storm } from '../../src/testkit/index.js';
import { cli, tempDir } from '../cli/run.js';

/**
 * `storm` on a program of its own, wired the way program.ts wires every command (app.action),
 * so this test does not depend on where the command is registered.
 */
const stormCli = async (argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  let stdout = '';
  let stderr = '';
  const io: Io = {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
    stdin: Readable.from(['']),
    env: {},
    cwd: process.cwd(),
  };
  const exit = { code: 0 };
  const program = new Command('isogroup').option('--store <url>').option('--json').exitOverride();
  program.configureOutput({ writeOut: (s) => void (stdout += s), writeErr: (s) => void (stderr += s) });
  const app: App = {
    io,
    action:
      (fn) =>
      async (...args) => {
        const ctx = createContext(io, (args[args.length - 1] as Command).optsWithGlobals() as GlobalOptions);
        try {
          const code = await fn(ctx, ...args);
          exit.code = typeof code === 'number' ? code : 0;
        } finally {
          await ctx.close();
        }
      },
  };
  registerStorm(program, app);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CliError) {
      stderr += `isogroup: ${err.message}\n`;
      return { code: err.exitCode, stdout, stderr };
    }
    if (err instanceof CommanderError) return { code: 2, stdout, stderr };
    throw err;
  }
  return { code: exit.code, stdout, stderr };
};

const lines = (text: string): unknown[] => text.trim().split('\n').map((l) => JSON.parse(l) as unknown);

describe('isogroup storm', () => {
  test('prints the storm as JSON Lines: exactly --steps commands, the same as the library for the same seed', async () => {
    const r = await stormCli(['storm', '--seed', '7', '--steps', '1200']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(lines(r.stdout)).toEqual([...storm({ seed: 7, steps: 1200 })]);
    const again = await stormCli(['storm', '--seed', '7', '--steps', '1200']);
    expect(again.stdout).toBe(r.stdout);
  });

  test('--mix and --personality reach the generator; string seeds are hashed', async () => {
    const r = await stormCli(['storm', '--seed', 'nightly', '--steps', '300', '--mix', 'mapping,dma=0', '--personality', 'linux']);
    expect(lines(r.stdout)).toEqual([...storm({ seed: 'nightly', steps: 300, mix: { map: 30, unmap: 15, dma: 0, hotplug: 2, unplug: 1, surprise: 0, race: 1 }, personality: 'linux' })]);
  });

  test('bad options are one-line errors with exit 2', async () => {
    for (const [args, message] of [
      [['--steps', 'many'], /--steps: expected a number of commands/],
      [['--mix', 'maps=3'], /unknown category "maps"/],
      [['--personality', 'arm'], /--personality: expected linux, virtio or both/],
      [['--mix', 'hotplug=0,unplug=0,surprise=0,driver=0,race=0,grant=0,ctx=0,claim=0,bind=0,domain=0,attach=0,map=0,unmap=0,dma=0,invalid=0'], /--mix: every mix weight is 0/],
    ] as const) {
      const r = await stormCli(['storm', ...args]);
      expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(message)]);
    }
  });

  test('`isogroup storm | isogroup exec -` runs: one result per command, most accepted', async () => {
    const out = await stormCli(['storm', '--seed', '1', '--steps', '400']);
    const dir = tempDir();
    const r = await cli(['--store', `file:${dir}/log.jsonl`, 'exec', '-'], { stdin: out.stdout });
    expect([0, 1]).toContain(r.code);
    const results = r.json<{ line: number; ok: boolean }>();
    expect(results.map((x) => x.line)).toEqual(results.map((_, i) => i + 1));
    expect(results).toHaveLength(400);
    expect(results.filter((x) => !x.ok).length).toBeLessThan(100);
  });
});

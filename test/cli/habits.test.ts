/**
 * Habits of a CLI: --version names the package and event-schema versions, colour follows NO_COLOR and
 * FORCE_COLOR, and shell completion is generated from the command definitions, so every command and
 * every option completes.
 */
import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { EVENT_SCHEMA_VERSION } from '../../domain/index.js';
import { paint } from '../../src/cli/io.js';
import { buildProgram } from '../../src/cli/program.js';
import { SHELLS } from '../../src/cli/commands/completion.js';
import { cli } from './run.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

describe('--version', () => {
  test('prints the package version and the event-schema version', async () => {
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`isogroup ${pkg.version} (event schema v${EVENT_SCHEMA_VERSION})\n`);
    expect(EVENT_SCHEMA_VERSION).toBe(1);
  });

  test('with --json, as one JSON object', async () => {
    for (const argv of [['--version', '--json'], ['--json', '-V']]) {
      const r = await cli(argv);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ name: 'isogroup', version: pkg.version, eventSchema: EVENT_SCHEMA_VERSION });
    }
  });
});

describe('colour', () => {
  const tty = { write: () => 0, isTTY: true };
  const pipe = { write: () => 0, isTTY: false };
  test('NO_COLOR set to anything turns colour off, even with FORCE_COLOR; an empty NO_COLOR does not count', () => {
    expect(paint(tty, {}).red('x')).toBe('\u001b[31mx\u001b[0m');
    expect(paint(tty, { NO_COLOR: '1' }).red('x')).toBe('x');
    expect(paint(tty, { NO_COLOR: '1', FORCE_COLOR: '1' }).red('x')).toBe('x');
    expect(paint(tty, { NO_COLOR: '' }).red('x')).toBe('\u001b[31mx\u001b[0m');
  });
  test('FORCE_COLOR colours a pipe; FORCE_COLOR=0 or false does not', () => {
    expect(paint(pipe, {}).red('x')).toBe('x');
    expect(paint(pipe, { FORCE_COLOR: '1' }).red('x')).toBe('\u001b[31mx\u001b[0m');
    expect(paint(pipe, { FORCE_COLOR: '0' }).red('x')).toBe('x');
    expect(paint(pipe, { FORCE_COLOR: 'false' }).red('x')).toBe('x');
  });
  test('a command on a terminal prints no escape codes when NO_COLOR is set', async () => {
    const coloured = await cli(['--store', 'memory:', 'groups'], { tty: true, env: {} });
    const plain = await cli(['--store', 'memory:', 'groups'], { tty: true, env: { NO_COLOR: '1' } });
    expect(plain.code).toBe(0);
    expect(plain.stdout).not.toContain('\u001b[');
    expect(coloured.stdout.split('\u001b[').map((part, i) => (i === 0 ? part : part.replace(/^\d+m/, ''))).join('')).toBe(plain.stdout);
  });
});

/** The program with every command defined (what completion walks). */
const everyCommand = await buildProgram({ stdout: { write: () => 0 }, stderr: { write: () => 0 }, stdin: process.stdin, env: {}, cwd: ROOT }, { code: 0 });

describe('isogroup completion', () => {
  const program = everyCommand;
  const walk = (c: Command): Command[] => [c, ...c.commands.flatMap(walk)];
  const commands = walk(program).slice(1);

  test.each([...SHELLS])('%s: every command and every option of every command appears', async (shell) => {
    const r = await cli(['completion', shell]);
    expect(r.code).toBe(0);
    expect(commands.length).toBeGreaterThan(20);
    for (const c of commands) {
      expect(r.stdout).toMatch(new RegExp(`(^|[\\s"'(])${c.name()}([\\s"':)]|$)`, 'm'));
      for (const o of c.options) {
        if (o.long) expect(r.stdout).toContain(shell === 'fish' ? `-l ${o.long.slice(2)}` : o.long);
      }
    }
    for (const o of program.options) if (o.long) expect(r.stdout).toContain(shell === 'fish' ? `-l ${o.long.slice(2)}` : o.long);
  });

  const complete = (script: string, line: string): string[] => {
    const words = line.split(' ');
    const out = execFileSync(
      'bash',
      ['-c', `eval "$(cat)"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _isogroup; printf '%s\\n' "\${COMPREPLY[@]}"`],
      { input: script, encoding: 'utf8' },
    );
    return out.split('\n').filter((l) => l !== '');
  };

  test('bash completes commands, subcommands and a command’s options, skipping option values', async () => {
    const script = (await cli(['completion', 'bash'])).stdout;
    expect(complete(script, 'isogroup gr')).toEqual(['groups']);
    expect(complete(script, 'isogroup --store memory: comp')).toEqual(['completion']);
    expect(complete(script, 'isogroup store i')).toEqual(['init']);
    expect(complete(script, 'isogroup can-dma --dev')).toEqual(['--device']);
    expect(complete(script, 'isogroup --host groups can-dma --io')).toEqual(['--iova']);
  });

  test('an unknown shell is refused, naming the ones there are', async () => {
    const r = await cli(['completion', 'tcsh']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('isogroup: completion: unknown shell "tcsh": use one of bash, zsh, fish\n');
  });
});

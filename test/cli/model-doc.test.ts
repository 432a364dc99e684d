/**
 * docs/model.md tells users what isogroup does through examples; this keeps them true. Each
 * ```console block marked `<!-- run: STORE [after: FILE…] -->` runs, command by command, through a
 * shell with `isogroup` on the PATH (the built CLI) and ISOGROUP_STORE naming STORE's log, in a
 * folder holding every ```jsonl block marked `<!-- file: NAME -->`; blocks of the same STORE
 * share its log, in document order, and the FILEs after `after:` are executed first. Output must
 * be what the page prints, but for times (they are the run's own) and trailing blanks.
 */
import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const DOC = readFileSync(join(ROOT, 'docs/model.md'), 'utf8');

interface Step {
  readonly command: string;
  readonly expected: string[];
}
interface Block {
  readonly store: string;
  readonly after: string[];
  readonly steps: Step[];
  readonly line: number;
}

const files = [...DOC.matchAll(/<!-- file: (\S+) -->\n```jsonl\n([\s\S]*?)```/g)].map((m) => [m[1]!, m[2]!] as const);

const blocks: Block[] = [...DOC.matchAll(/<!-- run: (\S+)(?: after: ([^>]*?))? -->\n```console\n([\s\S]*?)```/g)].map((m) => {
  const steps: Step[] = [];
  let current: { command: string; expected: string[]; open: boolean } | null = null;
  for (const line of m[3]!.replace(/\n$/, '').split('\n')) {
    if (current?.open) {
      current.command += `\n${line}`;
      current.open = line.endsWith('\\');
    } else if (line.startsWith('$ ')) {
      if (current) steps.push(current);
      current = { command: line.slice(2), expected: [], open: line.endsWith('\\') };
    } else current?.expected.push(line);
  }
  if (current) steps.push(current);
  return { store: m[1]!, after: m[2]?.split(/\s+/).filter(Boolean) ?? [], steps, line: DOC.slice(0, m.index).split('\n').length };
});

/** Times are the run's own; trailing blanks are the editor's. */
const normal = (lines: readonly string[]): string[] => lines.map((l) => l.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'TIME').trimEnd());

describe('docs/model.md: the examples print what the page says', () => {
  test('the page has its examples', () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
    expect(blocks.length).toBeGreaterThanOrEqual(10);
  });

  test('every example, in order', () => {
    const dir = mkdtempSync(join(tmpdir(), 'isogroup-model-doc-'));
    try {
      for (const [name, text] of files) writeFileSync(join(dir, name), text);
      const bin = join(dir, 'bin');
      execFileSync('mkdir', [bin]);
      writeFileSync(join(bin, 'isogroup'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
      chmodSync(join(bin, 'isogroup'), 0o755);
      const shell = (command: string, store: string): string => {
        try {
          return execFileSync('bash', ['-c', command], {
            cwd: dir,
            env: { PATH: `${bin}:${process.env.PATH ?? ''}`, ISOGROUP_STORE: `file:${join(dir, `${store}.log.jsonl`)}`, NO_COLOR: '1' },
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'pipe'],
          });
        } catch (err) {
          // Refusals and denials exit 1: their output is still the answer.
          return (err as { stdout?: string }).stdout ?? '';
        }
      };
      for (const b of blocks) {
        for (const f of b.after) shell(`isogroup exec ${f} > /dev/null`, b.store);
        for (const s of b.steps) {
          const got = normal(shell(s.command, b.store).replace(/\n$/, '').split('\n'));
          expect({ at: `docs/model.md:${b.line}`, command: s.command, output: got }).toEqual({ at: `docs/model.md:${b.line}`, command: s.command, output: normal(s.expected) });
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

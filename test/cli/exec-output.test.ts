/** `isogroup exec` writes the results of a group commit together: one write per 1,000 commands, not one per command. */
import { describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { run } from '../../src/cli/program.js';
import { tempDir } from './run.js';

describe('exec output', () => {
  test('2,500 commands: three writes to stdout, one result line per command in order', async () => {
    const store = `file:${join(tempDir(), 'log.jsonl')}`;
    const input = Array.from({ length: 2500 }, (_, i) => (i === 1200 ? 'not json' : JSON.stringify({ type: 'iommu.add', iommu: `i${i}` }))).join('\n');
    const writes: string[] = [];
    const code = await run(['--store', store, 'exec', '-'], {
      stdout: { write: (s: string) => writes.push(s), isTTY: false },
      stderr: { write: () => true, isTTY: false },
      stdin: Readable.from([input]),
      env: {},
      cwd: process.cwd(),
    });
    expect(code).toBe(1);
    expect(writes).toHaveLength(3);
    const results = writes
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { line: number; ok: boolean; pos: number[]; message?: string });
    expect(results.map((r) => r.line)).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    expect(results[0]).toEqual({ line: 1, ok: true, pos: [1], events: ['IommuAdded'] });
    expect(results[1200]).toMatchObject({ line: 1201, ok: false, pos: [1201] });
    expect(results[1200]!.message).toMatch(/^line 1201: /);
    expect(results[2499]).toEqual({ line: 2500, ok: true, pos: [2500], events: ['IommuAdded'] });
  });
});

import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { newHost, groupSets } from '../helpers.js';

const examplePath = fileURLToPath(new URL('../fixtures/desktop-gpu-passthrough.jsonl', import.meta.url));

describe('the worked example: desktop GPU passthrough', () => {
  const lines = readFileSync(examplePath, 'utf8').trim().split('\n');
  const h = newHost();
  const results = lines.map((l) => h.exec(JSON.parse(l)));

  test('line 21 is refused EPERM (the audio function still has snd_hda_intel); every other line is accepted', () => {
    results.forEach((r, i) => {
      if (i === 20) {
        expect(r.ok).toBe(false);
        expect(r.status).toBe('EPERM');
        expect(r.message).toMatch(/snd_hda_intel/);
      } else expect({ line: i + 1, ok: r.ok, status: r.status, message: r.message }).toEqual({ line: i + 1, ok: true, status: undefined, message: undefined });
    });
  });

  test('groups are exactly the ones the example names', () => {
    expect(groupSets(h)).toEqual([
      ['0000:00:01.1'],
      ['0000:00:01.3'],
      ['0000:02:00.0'],
      ['0000:03:00.0', '0000:04:00.0'],
      ['0000:03:04.0', '0000:05:00.0', '0000:06:00.0'],
      ['0000:0a:00.0', '0000:0a:00.1'],
    ]);
  });

  test('the last dma (from the audio function) is allowed through the group domain at pa 0x100001000', () => {
    const last = h.log[h.log.length - 1]!;
    const checked = h.log.find((e) => e.type === 'DmaChecked' && e.pos >= last.pos - 1)!;
    expect(checked.data).toMatchObject({ allowed: true, reason: 'mapped', domain: 'vm1-ioas' });
  });
});

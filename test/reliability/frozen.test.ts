/**
 * Frozen logs (issue 18): `test/fixtures/frozen/v1.jsonl` is a file-store log written by the v1 event
 * shapes (two hosts: a demo with refusals; an imported observed copy of it plus more commands, with
 * a DMA-fault alert), and `v1.expected.json` the answers today's version gave on it. Every later
 * version must replay the log to the same answers and keep its hash chain intact: a log written
 * last year is evidence only if it still says the same thing. Never regenerate these files; when an
 * event shape changes, old shapes must be upcast on read so that this test still passes.
 *
 * To write the expected answers for a NEW frozen log: FROZEN_WRITE=1 and the log's file name.
 */
import { describe, expect, test } from '@jest/globals';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from '../cli/run.js';

const dir = new URL('../fixtures/frozen/', import.meta.url).pathname;

/** The questions asked of each host, as CLI arguments (all with --json). */
const QUESTIONS: Record<string, string[][]> = {
  local: [
    ['groups'],
    ['replay'],
    ['check'],
    ['check', '--integrity'],
    ['audit', '--format', 'json'],
    ['can-dma', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w'],
    ['can-dma', '--device', '0000:04:00.0', '--iova', '0x1000', '--access', 'r'],
    ['who-can', '--pa', '0x100000000', '--access', 'w'],
    ['groups', '--at', '20'],
  ],
  observed: [
    ['groups'],
    ['replay'],
    ['check'],
    ['check', '--integrity'],
    ['audit', '--format', 'json'],
    ['can-dma', '--device', '0000:0a:00.0', '--iova', '0x100000000', '--access', 'w'],
    ['who-can', '--pa', '0x100000000', '--access', 'w'],
    ['groups', '--at', '36'],
  ],
};

const answers = async (log: string): Promise<Record<string, unknown>> => {
  const work = tempDir();
  copyFileSync(join(dir, log), join(work, 'log.jsonl'));
  const store = `file:${join(work, 'log.jsonl')}`;
  const out: Record<string, unknown> = {};
  for (const [host, questions] of Object.entries(QUESTIONS)) {
    for (const q of questions) {
      const r = await cli(['--store', store, '--host', host, '--json', ...q]);
      out[`${host}: ${q.join(' ')}`] = { code: r.code, answer: r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown) };
    }
  }
  return out;
};

describe('frozen v1 logs replay to the same answers, forever', () => {
  test('v1.jsonl: same state summaries, groups, verdicts, reverse reach, audit, alerts and an intact chain', async () => {
    const got = await answers('v1.jsonl');
    const file = join(dir, 'v1.expected.json');
    if (process.env.FROZEN_WRITE === 'v1.jsonl') writeFileSync(file, `${JSON.stringify(got, null, 1)}\n`);
    const expected = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(got).toEqual(expected);
    // What the fixture is there to cover.
    const log = readFileSync(join(dir, 'v1.jsonl'), 'utf8');
    expect(log).toContain('"type":"CommandRejected"');
    expect(log).toContain('"observed":true');
    expect(JSON.stringify(expected['observed: check'])).toContain('dma-fault');
  });
});

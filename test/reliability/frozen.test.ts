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
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FROZEN_DIR as dir, answers } from './frozen-kit.js';

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

/**
 * The questions asked of the frozen logs (test/fixtures/frozen) and how their answers are taken:
 * shared by the frozen-log test and the event-version tests, which ask the same questions of the
 * same log written in older shapes, or read under a newer one.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from '../cli/run.js';

export const FROZEN_DIR = new URL('../fixtures/frozen/', import.meta.url).pathname;

/** The questions asked of each host, as CLI arguments (all with --json). */
export const QUESTIONS: Record<string, string[][]> = {
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

/** Every question's exit code and JSON answer, on a copy of `log` (a file in the frozen directory, or a path). */
export const answers = async (log: string): Promise<Record<string, unknown>> => {
  const work = tempDir();
  copyFileSync(log.includes('/') ? log : join(FROZEN_DIR, log), join(work, 'log.jsonl'));
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

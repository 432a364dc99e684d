/**
 * Archive segments (issue 18, item 4): `isogroup archive` moves the live file log, verified, into a
 * gzip segment beside it. Every answer stays the same (the frozen v1 log's pinned answers
 * included), appends continue the positions and the chain, `check --integrity` walks segment and
 * live log as one chain, and a replaced segment or an archive cut short by a crash is noticed.
 */
import { describe, expect, test } from '@jest/globals';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { entryHash } from '../../src/store/chain.js';
import { encodeLine } from '../../src/store/file-format.js';
import type { RecordedEvent } from '../../src/store/types.js';
import { cli, tempDir } from '../cli/run.js';
import { FROZEN_DIR, QUESTIONS } from './frozen-kit.js';

const ask = async (store: string): Promise<Record<string, unknown>> => {
  const out: Record<string, unknown> = {};
  for (const [host, questions] of Object.entries(QUESTIONS)) {
    for (const q of questions) {
      const r = await cli(['--store', store, '--host', host, '--json', ...q]);
      out[`${host}: ${q.join(' ')}`] = { code: r.code, answer: r.json() };
    }
  }
  return out;
};

const lines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter(Boolean);

describe('isogroup archive', () => {
  test('the frozen v1 log, archived, gives its pinned answers; appends continue positions and chain; a second archive stacks', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    copyFileSync(join(FROZEN_DIR, 'v1.jsonl'), file);
    const store = `file:${file}`;
    const pinned = JSON.parse(readFileSync(join(FROZEN_DIR, 'v1.expected.json'), 'utf8')) as Record<string, unknown>;

    const r = await cli(['--store', store, '--json', 'archive', '--keep', '10']);
    expect(r.code).toBe(0);
    const a = r.json()[0] as { archived: number; segment: string; firstLine: number; liveLines: number };
    expect(a).toMatchObject({ segment: '000001.jsonl.gz', firstLine: 1 });
    // Whole appends only: the cut never splits one (the observed host's import is one append of 36).
    expect(a.archived + a.liveLines).toBe(99);
    expect(a.liveLines).toBeGreaterThanOrEqual(10);
    expect(lines(file)).toHaveLength(a.liveLines);
    expect(readdirSync(`${file}.segments`).sort()).toEqual(['000001.jsonl.gz', 'manifest.json']);
    expect(await ask(store)).toEqual(pinned);

    const more = await cli(['--store', store, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"late0"}\n' });
    expect(more.code).toBe(0);
    const last = JSON.parse(lines(file).at(-1)!) as { pos: number; stream: string };
    expect(last).toMatchObject({ pos: 37, stream: 'host-local' });
    expect((await cli(['--store', store, '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true, entries: 37 });
    expect((await cli(['--store', store, 'replay', '--verify'])).code).toBe(0);

    expect((await cli(['seal', '--new-key', 'k.pem'], { cwd: dir })).code).toBe(0);
    const again = await cli(['--store', store, '--json', 'archive', '--key', 'k.pem'], { cwd: dir });
    expect(again.json()[0]).toMatchObject({ segment: '000002.jsonl.gz', firstLine: a.archived + 1, liveLines: 0 });
    // The closed segment sealed: one seal per stream at its end, checkable like any other.
    const seals = (again.json()[0] as { seals: string[] }).seals;
    expect(seals).toEqual([expect.stringMatching(/^local-37-\d{8}T\d{9}Z\.seal\.json$/), expect.stringMatching(/^observed-63-/)]);
    const proof = await cli(['--store', store, '--json', 'check', '--integrity', '--seal', join(`${file}.segments`, seals[0]!), '--key', 'k.pem.pub'], { cwd: dir });
    expect(proof.json()[0]).toMatchObject({ ok: true, seal: { pos: 37, verified: true } });
    expect(readFileSync(file, 'utf8')).toBe('');
    expect((await cli(['--store', store, '--json', 'groups', '--at', '20'])).json()[0]).toEqual((pinned['local: groups --at 20'] as { answer: unknown[] }).answer[0]);
    expect((await cli(['--store', store, '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true, entries: 37 });
    expect((await cli(['--store', store, '--json', 'replay'])).json()[0]).toMatchObject({ pos: 37 });
  });

  test('a segment replaced by a re-chained, edited copy: the store refuses it; check --integrity names the seam, or the seal does', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    copyFileSync(join(FROZEN_DIR, 'v1.jsonl'), file);
    const store = `file:${file}`;
    expect((await cli(['seal', '--new-key', 'k.pem'], { cwd: dir })).code).toBe(0);
    expect((await cli(['--store', store, 'seal', '--key', 'k.pem', '--out', 'local.seal'], { cwd: dir })).code).toBe(0);
    const a = (await cli(['--store', store, '--json', 'archive', '--keep', '10'])).json()[0] as { archived: number };
    const seg = join(`${file}.segments`, '000001.jsonl.gz');
    const original = readFileSync(seg);
    // The tamperer edits entry 3 of both hosts and re-hashes everything after it inside the segment.
    const prev = new Map<string, string>();
    const forged = gunzipSync(original)
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const { crc: _crc, batch, ...e } = JSON.parse(l) as Record<string, unknown> & { batch?: number };
        const entry = e as unknown as RecordedEvent;
        const data = entry.pos === 3 ? { ...entry.data, name: 'forged' } : entry.data;
        const linked = { ...entry, data, prev: prev.get(entry.stream!) ?? entry.prev! };
        const hash = entryHash(linked);
        prev.set(entry.stream!, hash);
        return encodeLine({ ...linked, hash }, batch);
      })
      .join('');
    writeFileSync(seg, gzipSync(Buffer.from(forged)));
    const opened = await cli(['--store', store, 'groups']);
    expect(opened.code).toBe(2);
    expect(opened.stderr).toMatch(/000001\.jsonl\.gz: the archive segment is not the one archived \(SHA-256 differs\)/);
    // host-observed goes on in the live log: its first live entry links to the original last archived one, the break shows at the seam.
    const archivedObserved = lines(join(FROZEN_DIR, 'v1.jsonl')).slice(0, a.archived).filter((l) => l.includes('"stream":"host-observed"')).length;
    expect(archivedObserved).toBeGreaterThan(3);
    const c = await cli(['--store', store, '--host', 'observed', '--json', 'check', '--integrity']);
    expect(c.code).toBe(1);
    expect(c.json()[0]).toMatchObject({ ok: false, break: { pos: archivedObserved, kind: 'edited' } });
    // host-local lies wholly inside the segment, re-chained: only the seal shipped before can tell.
    expect((await cli(['--store', store, '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true });
    const sealed = await cli(['--store', store, '--json', 'check', '--integrity', '--seal', 'local.seal', '--key', 'k.pem.pub'], { cwd: dir });
    expect(sealed.code).toBe(1);
    expect(sealed.json()[0]).toMatchObject({ ok: false, break: { pos: 36, kind: 'edited' } });
    writeFileSync(seg, original);
    expect((await cli(['--store', store, '--host', 'observed', '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true });
    expect((await cli(['--store', store, '--json', 'check', '--integrity', '--seal', 'local.seal'], { cwd: dir })).code).toBe(0);
  });

  test('an archive cut short after its manifest (the live log not yet replaced): readers ignore that segment; archiving again finishes it, or refuses when the live log is not the segment plus more', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    copyFileSync(join(FROZEN_DIR, 'v1.jsonl'), file);
    const store = `file:${file}`;
    expect((await cli(['--store', store, 'archive', '--keep', '5'])).code).toBe(0);
    copyFileSync(join(FROZEN_DIR, 'v1.jsonl'), file); // as if the crash came before the live log was replaced
    const pinned = JSON.parse(readFileSync(join(FROZEN_DIR, 'v1.expected.json'), 'utf8')) as Record<string, { answer: unknown[] }>;
    expect((await cli(['--store', store, '--json', 'groups'])).json()[0]).toEqual(pinned['local: groups']!.answer[0]);
    expect((await cli(['--store', store, '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true, entries: 36 });
    const archivedLines = JSON.parse(readFileSync(`${file}.segments/manifest.json`, 'utf8')).segments[0].lines as number;
    // The live log's first lines edited: the cut-short archive cannot be finished safely.
    const v1 = readFileSync(join(FROZEN_DIR, 'v1.jsonl'), 'utf8');
    const rows = v1.split('\n');
    rows[1] = rows[1]!.replace(/"id":"./, '"id":"Z');
    writeFileSync(file, rows.join('\n'));
    const refused = await cli(['--store', store, 'archive']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/the last archive of .* was cut short/);
    // Untouched: archiving again drops the segment's lines from the live log (the missing step), then archives the rest.
    writeFileSync(file, v1);
    const again = await cli(['--store', store, '--json', 'archive']);
    expect(again.code).toBe(0);
    expect(again.json()[0]).toMatchObject({ segment: '000002.jsonl.gz', firstLine: archivedLines + 1, liveLines: 0 });
    expect((await cli(['--store', store, '--json', 'groups'])).json()[0]).toEqual(pinned['local: groups']!.answer[0]);
    expect((await cli(['--store', store, '--host', 'observed', '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true, entries: 63 });
  });

  test('bad input: a database store, a bad --keep; a broken chain is not archived', async () => {
    expect((await cli(['--store', 'memory:', 'archive'])).stderr).toMatch(/archive: only file: stores have archive segments/);
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    expect((await cli(['--store', `file:${file}`, 'archive', '--keep', 'x'])).stderr).toMatch(/--keep: expected a number of entries, got "x"/);
    copyFileSync(join(FROZEN_DIR, 'v1.jsonl'), file);
    const text = readFileSync(file, 'utf8').replace('"hash":"ca6665355930', '"hash":"da6665355930');
    writeFileSync(file, text);
    const r = await cli(['--store', `file:${file}`, 'archive']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not archiving .*: the hash chain of host-local breaks at #2/);
    expect(existsSync(`${file}.segments`)).toBe(false);
  });
});

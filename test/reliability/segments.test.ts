/**
 * Segments (issue 18, item 4): a writer rolls its live log into closed, gzip (and sealed) archive
 * segments past ISOGROUP_SEGMENT_BYTES, and the answers stay those of an unrolled log;
 * `isogroup archive --to DIR` moves closed segments elsewhere; `check --integrity` walks the whole
 * chain when they are reachable, and when they are not it checks the rest from the manifest's
 * recorded heads and names the positions it could not check.
 */
import { describe, expect, test } from '@jest/globals';
import { copyFileSync, existsSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { SegmentManifest } from '../../src/store/segments.js';
import { openFileStore } from '../../src/store/file.js';
import { newEvent } from '../store/conformance.js';
import { cli, tempDir } from '../cli/run.js';
import { FROZEN_DIR, QUESTIONS } from './frozen-kit.js';
import { SETUP, prng, randomCommand } from './kit.js';

const lines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter(Boolean);
const manifestOf = (file: string): SegmentManifest => JSON.parse(readFileSync(`${file}.segments/manifest.json`, 'utf8')) as SegmentManifest;

/** Two runs of the same commands differ only in ids, times and so hashes: leave those out. */
const VARYING = new Set(['id', 'at', 'time', 'prev', 'hash', 'head', 'command', 'meta', 'sealed']);
const normal = (v: unknown): unknown => {
  if (Array.isArray(v)) return v.map(normal);
  if (typeof v === 'string') return v.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'T').replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'U');
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v).filter(([k]) => !VARYING.has(k)).map(([k, x]) => [k, normal(x)]));
};

const QUERIES: string[][] = [
  ['groups'],
  ['groups', '--at', '300'],
  ['replay'],
  ['check'],
  ['can-dma', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w'],
  ['who-can', '--pa', '0x100000000', '--access', 'w'],
];

const answers = async (store: string): Promise<unknown> => {
  const out: Record<string, unknown> = {};
  for (const q of QUERIES) {
    const r = await cli(['--store', store, '--json', ...q]);
    out[q.join(' ')] = { code: r.code, answer: normal(r.json()) };
  }
  return out;
};

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

describe('rolling segments', () => {
  test('a writer rolling at 8 KiB during an exec of 2,500 commands gives the export and answers of an unrolled log; each closed segment is sealed', async () => {
    const dir = tempDir();
    const rnd = prng(18);
    const cmds = [...SETUP, ...Array.from({ length: 2500 }, () => randomCommand(rnd))];
    const stdin = `${cmds.map((c) => JSON.stringify(c)).join('\n')}\n`;
    const plain = join(dir, 'plain.jsonl');
    const rolled = join(dir, 'rolled.jsonl');
    expect((await cli(['seal', '--new-key', 'k.pem'], { cwd: dir })).code).toBe(0);

    const a = await cli(['--store', `file:${plain}`, '--json', 'exec', '-'], { stdin });
    const b = await cli(['--store', `file:${rolled}`, '--json', 'exec', '-'], { stdin, cwd: dir, env: { ISOGROUP_SEGMENT_BYTES: '8K', ISOGROUP_SEGMENT_KEY: 'k.pem' } });
    expect(b.stderr).toBe(a.stderr);
    expect(b.code).toBe(a.code);
    expect(normal(b.json())).toEqual(normal(a.json()));

    // It rolled (after each group commit that passed the threshold); no line lost or doubled.
    const m = manifestOf(rolled);
    expect(m.segments.length).toBeGreaterThanOrEqual(2);
    const total = lines(plain).length;
    expect(m.segments.reduce((n, s) => n + s.lines, 0) + lines(rolled).length).toBe(total);
    m.segments.forEach((s, i) => expect(s.firstLine).toBe(i === 0 ? 1 : m.segments[i - 1]!.firstLine + m.segments[i - 1]!.lines));
    const archived = m.segments.flatMap((s) => gunzipSync(readFileSync(join(`${rolled}.segments`, s.file))).toString('utf8').split('\n').filter(Boolean));
    expect(archived.length + lines(rolled).length).toBe(total);
    // Sealed: one seal per stream at each segment's end.
    const seals = readdirSync(`${rolled}.segments`).filter((f) => f.endsWith('.seal.json'));
    expect(seals.length).toBe(m.segments.length);
    const lastSeal = seals.sort((x, y) => Number(x.split('-')[1]) - Number(y.split('-')[1])).at(-1)!;
    const proof = await cli(['--store', `file:${rolled}`, '--json', 'check', '--integrity', '--seal', join(`${rolled}.segments`, lastSeal), '--key', 'k.pem.pub'], { cwd: dir });
    expect(proof.json()[0]).toMatchObject({ ok: true, seal: { verified: true } });

    const exportOf = async (file: string): Promise<unknown> => normal((await cli(['--store', `file:${file}`, 'export'])).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown));
    expect(await exportOf(rolled)).toEqual(await exportOf(plain));
    expect(await answers(`file:${rolled}`)).toEqual(await answers(`file:${plain}`));
    const plainCheck = (await cli(['--store', `file:${plain}`, '--json', 'check', '--integrity'])).json()[0] as { entries: number };
    expect((await cli(['--store', `file:${rolled}`, '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true, entries: plainCheck.entries });
    expect((await cli(['--store', `file:${rolled}`, 'replay', '--verify'])).code).toBe(0);
  });

  test('the library writer rolls after each append that passes the threshold and goes on appending to the new live log; reopened, it reads one log', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    const store = await openFileStore(file, { segmentBytes: 2048 });
    for (let i = 0; i < 120; i++) await store.append('s', [newEvent('TestHappened', { i })]);
    expect(await store.version('s')).toBe(120);
    await store.close();
    const m = manifestOf(file);
    expect(m.segments.length).toBeGreaterThan(10);
    expect(statSync(file).size).toBeLessThanOrEqual(2048);
    const again = await openFileStore(file, { readOnly: true });
    const read = [];
    for await (const e of again.read('s')) read.push(e);
    expect(read.map((e) => (e.data as { i: number }).i)).toEqual(Array.from({ length: 120 }, (_, i) => i));
    expect(read.map((e) => Number(e.checkpoint))).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    await again.close();
  });

  test('a live log whose chain no longer continues the last segment is not rolled: a warning, the append still acknowledged, nothing archived', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    const first = await openFileStore(file, { segmentBytes: 1024 });
    for (let i = 0; i < 8; i++) await first.append('s', [newEvent('TestHappened', { i })]);
    await first.close();
    const before = manifestOf(file).segments.length;
    expect(before).toBeGreaterThan(0);
    // Someone edits the last segment's recorded head: the live log no longer links to it.
    const m = manifestOf(file);
    const last = m.segments.at(-1)!;
    writeFileSync(`${file}.segments/manifest.json`, JSON.stringify({ ...m, segments: [...m.segments.slice(0, -1), { ...last, heads: { s: { ...last.heads.s!, hash: 'e'.repeat(64) } } }] }));
    const warnings: string[] = [];
    const again = await openFileStore(file, { segmentBytes: 1024, warn: (w) => warnings.push(w) });
    for (let i = 8; i < 16; i++) await again.append('s', [newEvent('TestHappened', { i })]);
    expect(await again.version('s')).toBe(16);
    await again.close();
    expect(warnings.join('\n')).toMatch(/not rolled into an archive segment .*the hash chain of s breaks at #\d+/);
    expect(manifestOf(file).segments.length).toBe(before);
  });

  test('a roll cut short by a crash (manifest written, live log not yet replaced): reopened, nothing lost or doubled, and the next roll finishes it', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    const first = await openFileStore(file);
    for (let i = 0; i < 10; i++) await first.append('s', [newEvent('TestHappened', { i })]);
    await first.close();
    const whole = readFileSync(file);
    const roller = await openFileStore(file, { segmentBytes: 1 });
    await roller.append('s', [newEvent('TestHappened', { i: 10 })]);
    await roller.close();
    const rolled = manifestOf(file).segments;
    expect(rolled).toHaveLength(1);
    // As if the crash came after the manifest: the live log still holds the archived lines.
    const segmentLines = gunzipSync(readFileSync(join(`${file}.segments`, '000001.jsonl.gz')));
    expect(segmentLines.subarray(0, whole.length).equals(whole)).toBe(true);
    writeFileSync(file, segmentLines);
    const read = async (): Promise<number[]> => {
      const r = await openFileStore(file, { readOnly: true });
      const out: number[] = [];
      for await (const e of r.read('s')) out.push((e.data as { i: number }).i);
      await r.close();
      return out;
    };
    expect(await read()).toEqual(Array.from({ length: 11 }, (_, i) => i));
    const warnings: string[] = [];
    const again = await openFileStore(file, { segmentBytes: 1, warn: (w) => warnings.push(w) });
    await again.append('s', [newEvent('TestHappened', { i: 11 })]);
    await again.close();
    expect(warnings).toEqual([]);
    expect(manifestOf(file).segments.map((s) => [s.firstLine, s.lines])).toEqual([
      [1, 11],
      [12, 1],
    ]);
    expect(readFileSync(file, 'utf8')).toBe('');
    expect(await read()).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  test('ISOGROUP_SEGMENT_BYTES that is not a size: a one-line error, nothing written', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    const r = await cli(['--store', `file:${file}`, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i0"}\n', env: { ISOGROUP_SEGMENT_BYTES: 'lots' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ISOGROUP_SEGMENT_BYTES: expected a size in bytes .*got "lots"/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(`${file}.segments`)).toBe(false);
    const flag = await cli(['--store', `file:${file}`, '--segment-size', '0', 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i0"}\n' });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^isogroup: --segment-size: expected a size in bytes .*got "0"/);
    expect(existsSync(file)).toBe(false);
    // The flag works like the variable.
    expect((await cli(['--store', `file:${file}`, '--segment-size', '1', 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i0"}\n' })).code).toBe(0);
    expect(manifestOf(file).segments).toHaveLength(1);
  });
});

describe('isogroup archive --to DIR', () => {
  const archived = async (): Promise<{ dir: string; file: string; store: string; far: string }> => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    copyFileSync(join(FROZEN_DIR, 'v1.jsonl'), file);
    const store = `file:${file}`;
    expect((await cli(['--store', store, 'archive', '--keep', '10'])).code).toBe(0);
    return { dir, file, store, far: join(dir, 'far') };
  };
  const pinned = (): Record<string, unknown> => JSON.parse(readFileSync(join(FROZEN_DIR, 'v1.expected.json'), 'utf8')) as Record<string, unknown>;

  test('moved segments: answers unchanged, the manifest says where, check --integrity walks the whole chain; appends and further archives go on', async () => {
    const { file, store, far } = await archived();
    const r = await cli(['--store', store, '--json', 'archive', '--to', far]);
    expect(r.json()[0]).toEqual({ moved: ['000001.jsonl.gz'], to: far });
    expect(readdirSync(`${file}.segments`)).toEqual(['manifest.json']);
    expect(readdirSync(far)).toEqual(['000001.jsonl.gz']);
    expect(manifestOf(file).segments[0]).toMatchObject({ file: '000001.jsonl.gz', dir: far });
    expect(await ask(store)).toEqual(pinned());
    const c = await cli(['--store', store, '--host', 'observed', '--json', 'check', '--integrity']);
    expect(c.json()[0]).toMatchObject({ ok: true, entries: 63 });
    expect(c.json()[0]).not.toHaveProperty('unverified');
    // Nothing left to move; a new segment is written beside the log, then moved too.
    expect((await cli(['--store', store, 'archive', '--to', far])).stdout).toMatch(/nothing to move/);
    expect((await cli(['--store', store, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"late0"}\n' })).code).toBe(0);
    expect((await cli(['--store', store, 'archive'])).code).toBe(0);
    expect((await cli(['--store', store, '--json', 'archive', '--to', far])).json()[0]).toEqual({ moved: ['000002.jsonl.gz'], to: far });
    expect((await cli(['--store', store, '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true, entries: 37 });
  });

  test('the archive disk absent: check --integrity verifies the live part from the recorded head and names the positions not checked; queries refuse', async () => {
    const { dir, file, store, far } = await archived();
    expect((await cli(['--store', store, 'archive', '--to', far])).code).toBe(0);
    const seg = manifestOf(file).segments[0]!;
    renameSync(far, join(dir, 'unmounted'));

    const observed = await cli(['--store', store, '--host', 'observed', '--json', 'check', '--integrity']);
    expect(observed.code).toBe(0);
    const gapEnd = seg.heads['host-observed']!.pos;
    expect(observed.json()[0]).toMatchObject({ ok: true, entries: 63, complete: false, unverified: [{ from: 1, to: gapEnd, segment: '000001.jsonl.gz', reason: 'not found' }] });
    const text = await cli(['--store', store, '--host', 'observed', 'check', '--integrity']);
    expect(text.stdout).toMatch(new RegExp(`entries 1–${gapEnd} NOT checked \\(archive segment .*000001\\.jsonl\\.gz cannot be read: not found\\)`));
    // host-local lies wholly in the moved segment: nothing of it is vouched for.
    expect((await cli(['--store', store, '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true, entries: 36, complete: false, unverified: [{ from: 1, to: 36 }] });
    const q = await cli(['--store', store, 'groups']);
    expect(q.code).toBe(2);
    expect(q.stderr).toMatch(/cannot read the archive segment .*000001\.jsonl\.gz: not found/);

    // The live part is still checked: an edit there is found at its position (never hidden by the gap).
    const live = lines(file);
    const k = live.findIndex((l) => l.includes('"stream":"host-observed"'));
    const victim = JSON.parse(live[k]!) as { pos: number };
    live[k] = live[k]!.replace(/"data":\{/, '"data":{"forged":1,');
    writeFileSync(file, `${live.join('\n')}\n`);
    const broken = await cli(['--store', store, '--host', 'observed', '--json', 'check', '--integrity']);
    expect(broken.code).toBe(1);
    expect(broken.json()[0]).toMatchObject({ ok: false, break: { pos: victim.pos, kind: 'edited' } });
  });

  test('the first live entry no longer linking to the head the manifest recorded is a break at the seam', async () => {
    const { dir, file, store, far } = await archived();
    expect((await cli(['--store', store, 'archive', '--to', far])).code).toBe(0);
    renameSync(far, join(dir, 'unmounted'));
    const m = manifestOf(file);
    const head = m.segments[0]!.heads['host-observed']!;
    const edited = { ...m, segments: [{ ...m.segments[0]!, heads: { ...m.segments[0]!.heads, 'host-observed': { pos: head.pos, hash: 'f'.repeat(64) } } }] };
    writeFileSync(`${file}.segments/manifest.json`, JSON.stringify(edited));
    const r = await cli(['--store', store, '--host', 'observed', '--json', 'check', '--integrity']);
    expect(r.code).toBe(1);
    expect(r.json()[0]).toMatchObject({ ok: false, break: { pos: head.pos + 1, kind: 'edited' } });
  });

  test('a tampered moved segment is detected: the store refuses it, check --integrity names the break', async () => {
    const { file, store, far } = await archived();
    expect((await cli(['--store', store, 'archive', '--to', far])).code).toBe(0);
    const seg = join(far, '000001.jsonl.gz');
    const text = gunzipSync(readFileSync(seg)).toString('utf8');
    const target = text.split('\n').findIndex((l) => l.includes('"stream":"host-observed"') && l.includes('"pos":2,'));
    const rows = text.split('\n');
    rows[target] = rows[target]!.replace(/"data":\{/, '"data":{"forged":1,');
    writeFileSync(seg, gzipSync(Buffer.from(rows.join('\n'))));
    const q = await cli(['--store', store, 'groups']);
    expect(q.code).toBe(2);
    expect(q.stderr).toMatch(/000001\.jsonl\.gz: the archive segment is not the one archived \(SHA-256 differs\)/);
    const c = await cli(['--store', store, '--host', 'observed', '--json', 'check', '--integrity']);
    expect(c.code).toBe(1);
    expect(c.json()[0]).toMatchObject({ ok: false, break: { pos: 2, kind: 'edited' } });
    // Moving it again refuses rather than spread a tampered copy.
    const again = await cli(['--store', store, 'archive', '--to', join(far, '..', 'elsewhere')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/the archive segment is not the one archived \(SHA-256 differs\): not moving it/);
    expect(manifestOf(file).segments[0]!.dir).toBe(far);
  });

  test('bad input: --to on a database store, an empty --to', async () => {
    expect((await cli(['--store', 'memory:', 'archive', '--to', 'x'])).stderr).toMatch(/archive: only file: stores have archive segments/);
    const dir = tempDir();
    expect((await cli(['--store', `file:${join(dir, 'log.jsonl')}`, 'archive', '--to', ''])).stderr).toMatch(/--to: expected a directory/);
  });
});

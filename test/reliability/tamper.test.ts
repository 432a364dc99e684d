/**
 * Tamper evidence (issue 18): someone with write access to the log changes it from outside — edits
 * one field, deletes an entry, inserts one, swaps two, cuts the tail after a seal — and recomputes
 * the per-line CRC of the file store, so the store's torn-write check has nothing to say. The hash
 * chain must still name the position and the kind of the change, every time, and never cry wolf
 * over an untouched log.
 *
 * The bulk (thousands of random tamperings per kind, seeded) goes through the checking functions
 * directly on the file's bytes; a few go through `isogroup check --integrity` end to end, on a
 * file log and on PostgreSQL edited with SQL.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import pg from 'pg';
import { entryHash, verifyChain, type IntegrityReport } from '../../src/store/chain.js';
import { fileChainEntries } from '../../src/store/integrity.js';
import { createRng } from '../../src/testkit/prng.js';
import { cli, tempDir } from '../cli/run.js';
import { buildLog, expectBreak, forgeEntry, mutateLeaf, randomHex, type Line } from './tamper-kit.js';

const TRIALS = 1000;
const STREAM = 'host-a';

/** A line as the file store writes it: the JSON object with its CRC-32 as the last member. */
const encode = (line: Line): string => {
  const { crc: _crc, ...body } = line;
  const text = JSON.stringify(body);
  return `${text.slice(0, -1)},"crc":"${crc32(text).toString(16).padStart(8, '0')}"}`;
};
const bytesOf = (lines: readonly Line[]): Buffer => Buffer.from(lines.map((l) => `${encode(l)}\n`).join(''));
const check = (lines: readonly Line[], seal?: { pos: number; head: string }): IntegrityReport =>
  verifyChain(fileChainEntries(bytesOf(lines), STREAM), seal);

const FIELDS = ['pos', 'id', 'type', 'data', 'meta', 'prev', 'hash'] as const;

describe('tamper evidence on the file store (the CRC recomputed, the chain still names it)', () => {
  let base: Line[];
  /** Indexes in `base` of host a's lines, in order (host b's lines sit between them). */
  let mine: number[];
  beforeAll(async () => {
    base = await buildLog();
    mine = base.flatMap((l, i) => (l.stream === STREAM ? [i] : []));
  });

  test('the untouched log verifies, also against a seal of any of its prefixes (no false alarms)', () => {
    expect(mine.length).toBeGreaterThan(60);
    expect(base.some((l) => l.type === 'CommandRejected')).toBe(true);
    expect(base.some((l) => (l.meta as { observed?: boolean }).observed === true)).toBe(true);
    const r = check(base);
    expect(r).toMatchObject({ ok: true, entries: mine.length, unchained: 0, head: base[mine[mine.length - 1]!]!.hash });
    const rng = createRng('tamper-untouched');
    let alarms = 0;
    for (let t = 0; t < TRIALS; t++) {
      const upTo = rng.int(mine.length + 1);
      const head = upTo === 0 ? '0'.repeat(64) : (base[mine[upTo - 1]!]!.hash as string);
      if (!check(base, { pos: upTo, head }).ok) alarms++;
    }
    expect(alarms).toBe(0);
    expect(check(base.filter((l) => l.stream !== STREAM)).ok).toBe(true);
  });

  test(`edit one field of one entry: ${TRIALS} random edits, every one named "edited" at its position`, () => {
    const rng = createRng('tamper-edit');
    const failures: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const i = rng.int(mine.length);
      const field = rng.pick(FIELDS);
      const lines = [...base];
      const line = { ...lines[mine[i]!]! };
      line[field] = field === 'prev' || field === 'hash' ? randomHex(rng) : field === 'id' ? randomUUID() : mutateLeaf(rng, line[field]);
      lines[mine[i]!] = line;
      expectBreak(check(lines), i + 1, 'edited', `edit ${field} of entry ${i + 1}`, failures);
    }
    expect(failures).toEqual([]);
  });

  test(`delete one entry: ${TRIALS} random deletions, every one named "removed" at its position`, () => {
    const rng = createRng('tamper-delete');
    const failures: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      // The newest entry's deletion is a truncation: only a seal can tell (next test but one).
      const i = rng.int(mine.length - 1);
      const lines = base.filter((_, k) => k !== mine[i]);
      expectBreak(check(lines), i + 1, 'removed', `delete entry ${i + 1}`, failures);
    }
    expect(failures).toEqual([]);
  });

  test(`insert one entry: ${TRIALS} random insertions (copied, forged or correctly linked), every one named "inserted"`, () => {
    const rng = createRng('tamper-insert');
    const failures: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const i = rng.int(mine.length); // insert before host a's entry i (an insertion after the newest one is an append)
      const { forged, prevMode, hashMode } = forgeEntry(rng, base[rng.int(base.length)]!, i + 1, STREAM, base[mine[i]!]!.prev as string);
      const lines = [...base];
      lines.splice(mine[i]!, 0, forged);
      expectBreak(check(lines), i + 1, 'inserted', `insert before entry ${i + 1} (prev mode ${prevMode}, hash mode ${hashMode})`, failures);
    }
    expect(failures).toEqual([]);
  });

  test('a correctly hashed copy of the next-but-one entry, inserted before the next: "inserted", not mistaken for a swap', () => {
    // [… 9, F(→10), 10(→9), 11(→10) …]: F links to entry 10 like entry 11 does; the chain goes on from 10, not from F.
    for (const i of [3, 20, mine.length - 3]) {
      const template = base[mine[i + 1]!]!;
      const forged: Line = { ...template, id: randomUUID(), pos: i + 1 };
      forged.hash = entryHash(forged as never);
      const lines = [...base];
      lines.splice(mine[i]!, 0, forged);
      expect(check(lines).break).toMatchObject({ pos: i + 1, kind: 'inserted' });
    }
  });

  test(`swap two entries: ${TRIALS} random swaps, every one named "reordered" at the first of the two`, () => {
    const rng = createRng('tamper-swap');
    const failures: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const a = rng.int(mine.length - 1);
      const b = a + 1 + rng.int(mine.length - a - 1);
      const lines = [...base];
      [lines[mine[a]!], lines[mine[b]!]] = [lines[mine[b]!]!, lines[mine[a]!]!];
      expectBreak(check(lines), a + 1, 'reordered', `swap entries ${a + 1} and ${b + 1}`, failures);
    }
    expect(failures).toEqual([]);
  });

  test(`truncate the tail after a seal: ${TRIALS} random cuts, every one named "truncated" where the log now ends`, () => {
    const rng = createRng('tamper-truncate');
    const failures: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const sealedAt = 1 + rng.int(mine.length);
      const seal = { pos: sealedAt, head: base[mine[sealedAt - 1]!]!.hash as string };
      const keep = rng.int(sealedAt); // entries kept: fewer than were sealed
      const lines = base.filter((l, k) => l.stream !== STREAM || mine.indexOf(k) < keep);
      // Without the seal the shorter log is a consistent log: exactly why seals exist.
      if (!check(lines).ok) failures.push(`cut to ${keep}: the chain alone should not object`);
      expectBreak(check(lines, seal), keep + 1, 'truncated', `cut to ${keep} after a seal at ${sealedAt}`, failures);
    }
    expect(failures).toEqual([]);
  });

  test(`replace a whole archive segment with an edited, re-hashed copy: ${TRIALS} random archive points, every one named "edited" at the seam`, () => {
    // check --integrity reads segments + live log as one (archivedBytes, then the live bytes): here the
    // segment is the first `cut` lines, replaced by a copy where one of host a's entries was edited and
    // every later host-a entry inside the segment re-hashed, so the segment is consistent on its own.
    const rng = createRng('tamper-segment');
    const failures: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const archived = 1 + rng.int(mine.length - 1); // host a entries in the segment; at least one stays live
      const cut = mine[archived - 1]! + 1;
      const k = rng.int(archived);
      const segment = base.slice(0, cut).map((l) => ({ ...l }));
      let prev: string | undefined;
      for (const [j, idx] of mine.slice(0, archived).entries()) {
        if (j < k) continue;
        const line = segment[idx]!;
        if (j === k) line.data = mutateLeaf(rng, line.data);
        if (prev !== undefined) line.prev = prev;
        line.hash = entryHash(line as never);
        prev = line.hash as string;
      }
      expectBreak(check([...segment, ...base.slice(cut)]), archived, 'edited', `segment of ${cut} lines, entry ${k + 1} edited and re-hashed`, failures);
    }
    expect(failures).toEqual([]);
  });

  test('a log written before the chain: an unchained prefix, reported; the file store appends chained entries after it', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    const store = `file:${file}`;
    writeFileSync(file, bytesOf(base.map(({ prev: _p, hash: _h, ...old }) => old)));
    const before = await cli(['--store', store, '--host', 'a', 'check', '--integrity']);
    expect(before.stdout).toContain(`ok: ${mine.length} entries, hash chain intact; unchained up to ${mine.length}`);
    expect((await cli(['--store', store, '--host', 'a', 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"late0"}\n' })).code).toBe(0);
    const after = await cli(['--store', store, '--host', 'a', '--json', 'check', '--integrity']);
    expect(after.json()[0]).toMatchObject({ ok: true, entries: mine.length + 1, unchained: mine.length });
  });

  test('a log rewritten with a consistent chain up to the seal is caught by the seal', () => {
    const sealedAt = mine.length;
    const seal = { pos: sealedAt, head: base[mine[sealedAt - 1]!]!.hash as string };
    // The tamperer edits entry 3 and re-hashes everything after it, so the chain alone is happy.
    const lines = base.map((l) => ({ ...l }));
    let prev = '0'.repeat(64);
    for (const [k, idx] of mine.entries()) {
      const line = lines[idx]!;
      if (k === 2) line.data = mutateLeaf(createRng(3), line.data);
      line.prev = prev;
      line.hash = entryHash(line as never);
      prev = line.hash as string;
    }
    expect(check(lines).ok).toBe(true);
    expect(check(lines, seal).break).toMatchObject({ pos: sealedAt, kind: 'edited' });
  });

  test('isogroup check --integrity names the position and kind on a tampered file (and the log no longer opens)', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    const store = `file:${file}`;
    const write = (lines: Line[]): void => writeFileSync(file, bytesOf(lines));
    write(base);
    const ok = await cli(['--store', store, '--host', 'a', '--json', 'check', '--integrity']);
    expect(ok.code).toBe(0);
    expect(ok.json<{ ok: boolean; entries: number }>()[0]).toMatchObject({ ok: true, entries: mine.length });

    const edited = base.map((l, k) => (k === mine[4] ? { ...l, data: mutateLeaf(createRng(1), l.data) } : l));
    write(edited);
    const e = await cli(['--store', store, '--host', 'a', 'check', '--integrity']);
    expect(e.code).toBe(1);
    expect(e.stdout).toMatch(/^#5 edited: /);
    // The store opens it (the CRC is right): a plain replay does not hash, a verified one stops at the break.
    expect((await cli(['--store', store, '--host', 'a', 'replay'])).code).toBe(0);
    const verified = await cli(['--store', store, '--host', 'a', 'replay', '--verify']);
    expect(verified.code).toBe(2);
    expect(verified.stderr).toContain('the hash chain breaks at #5');
    write(base);
    expect((await cli(['--store', store, '--host', 'a', 'replay', '--verify'])).code).toBe(0);

    write(base.filter((_, k) => k !== mine[9]));
    const d = await cli(['--store', store, '--host', 'a', '--json', 'check', '--integrity']);
    expect(d.code).toBe(1);
    expect(d.json<{ break: { pos: number; kind: string } }>()[0]!.break).toMatchObject({ pos: 10, kind: 'removed' });
    // The store itself refuses the damaged log (positions no longer follow on) without saying what happened.
    expect((await cli(['--store', store, '--host', 'a', 'groups'])).code).not.toBe(0);

    const swapped = [...base];
    [swapped[mine[2]!], swapped[mine[7]!]] = [swapped[mine[7]!]!, swapped[mine[2]!]!];
    write(swapped);
    expect((await cli(['--store', store, '--host', 'a', 'check', '--integrity'])).stdout).toMatch(/^#3 reordered: /);
  });

  test('seal, then truncate: check --integrity --seal FILE names the truncation; a tampered seal is refused', async () => {
    const dir = tempDir();
    const file = join(dir, 'log.jsonl');
    const store = `file:${file}`;
    writeFileSync(file, bytesOf(base));
    expect((await cli(['seal', '--new-key', 'seal.pem'], { cwd: dir })).code).toBe(0);
    const sealed = await cli(['--store', store, '--host', 'a', 'seal', '--key', 'seal.pem', '--out', 'a.seal'], { cwd: dir });
    expect(sealed.code).toBe(0);
    const good = await cli(['--store', store, '--host', 'a', 'check', '--integrity', '--seal', 'a.seal', '--key', 'seal.pem.pub'], { cwd: dir });
    expect(good.code).toBe(0);
    expect(good.stdout).toContain(`contains the prefix sealed at #${mine.length}`);
    writeFileSync(file, bytesOf(base.filter((_, k) => k !== mine[mine.length - 1] && k !== mine[mine.length - 2])));
    expect((await cli(['--store', store, '--host', 'a', 'check', '--integrity'])).code).toBe(0);
    const cut = await cli(['--store', store, '--host', 'a', '--json', 'check', '--integrity', '--seal', 'a.seal'], { cwd: dir });
    expect(cut.code).toBe(1);
    expect(cut.json<{ break: { pos: number; kind: string } }>()[0]!.break).toMatchObject({ pos: mine.length - 1, kind: 'truncated' });
    const seal = JSON.parse(readFileSync(join(dir, 'a.seal'), 'utf8')) as { pos: number };
    writeFileSync(join(dir, 'b.seal'), JSON.stringify({ ...seal, pos: seal.pos - 2 }));
    const forged = await cli(['--store', store, '--host', 'a', 'check', '--integrity', '--seal', 'b.seal'], { cwd: dir });
    expect(forged.code).not.toBe(0);
    expect(forged.stderr).toContain('signature does not verify');
  });
});

const SERVER = process.env.ISOGROUP_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `isogroup_tamper_${process.pid}_${randomUUID().slice(0, 8)}`;
const url = `${SERVER}?schema=${schema}`;

describe('tamper evidence on PostgreSQL (rows changed with SQL)', () => {
  let client: pg.Client;
  const events = `"${schema}".isogroup_events`;
  beforeAll(async () => {
    client = new pg.Client({ connectionString: SERVER });
    await client.connect();
  });
  afterAll(async () => {
    await client?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client?.end();
  });

  const integrity = async (host: string): Promise<{ ok: boolean; break?: { pos: number; kind: string } }> => {
    const r = await cli(['--store', url, '--host', host, '--json', 'check', '--integrity']);
    return r.json<{ ok: boolean; break?: { pos: number; kind: string } }>()[0]!;
  };
  const demo = async (host: string): Promise<void> => {
    expect((await cli(['--store', url, '--host', host, 'demo', '--quiet'])).code).toBe(0);
  };

  test('edit, delete, insert and swap by SQL: check --integrity names each position and kind', async () => {
    for (const h of ['edit', 'del', 'ins', 'swap']) await demo(h);
    expect(await integrity('edit')).toMatchObject({ ok: true });

    await client.query(`UPDATE ${events} SET data = jsonb_set(data, '{iommu}', '"forged"') WHERE stream = 'host-edit' AND pos = 2`);
    expect((await integrity('edit')).break).toMatchObject({ pos: 2, kind: 'edited' });

    await client.query(`DELETE FROM ${events} WHERE stream = 'host-del' AND pos = 7`);
    expect((await integrity('del')).break).toMatchObject({ pos: 7, kind: 'removed' });

    // Insert before 5: shift the later rows up (through a free range, the key is unique), then add a forged row.
    await client.query(`UPDATE ${events} SET pos = pos + 1000000 WHERE stream = 'host-ins' AND pos >= 5`);
    await client.query(`UPDATE ${events} SET pos = pos - 1000000 + 1 WHERE stream = 'host-ins' AND pos >= 1000000`);
    await client.query(
      `INSERT INTO ${events} (stream, pos, event_id, type, data, meta, prev, hash)
       SELECT stream, 5, $1, type, data, meta, prev, hash FROM ${events} WHERE stream = 'host-ins' AND pos = 3`,
      [randomUUID()],
    );
    expect((await integrity('ins')).break).toMatchObject({ pos: 5, kind: 'inserted' });

    await client.query(`UPDATE ${events} SET pos = 1000000 WHERE stream = 'host-swap' AND pos = 4`);
    await client.query(`UPDATE ${events} SET pos = 4 WHERE stream = 'host-swap' AND pos = 9`);
    await client.query(`UPDATE ${events} SET pos = 9 WHERE stream = 'host-swap' AND pos = 1000000`);
    expect((await integrity('swap')).break).toMatchObject({ pos: 4, kind: 'reordered' });
  });

  test('rows written before the chain existed are an unchained prefix; new appends chain on from them', async () => {
    await demo('legacy');
    await client.query(`UPDATE ${events} SET prev = NULL, hash = NULL WHERE stream = 'host-legacy'`);
    const before = await cli(['--store', url, '--host', 'legacy', 'check', '--integrity']);
    expect(before.code).toBe(0);
    expect(before.stdout).toContain('unchained up to 36');
    const more = await cli(['--store', url, '--host', 'legacy', 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"late0"}\n' });
    expect(more.code).toBe(0);
    const after = await cli(['--store', url, '--host', 'legacy', 'check', '--integrity']);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/ok: 37 entries, hash chain intact; unchained up to 36/);
    // The unchained prefix is still pinned at its end: the first chained entry links to its last one.
    await client.query(`UPDATE ${events} SET data = jsonb_set(data, '{x}', '1') WHERE stream = 'host-legacy' AND pos = 36`);
    expect((await integrity('legacy')).break).toMatchObject({ pos: 36, kind: 'edited' });
  });
});

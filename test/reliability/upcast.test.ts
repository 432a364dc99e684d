/**
 * Event versions and upcasting (issue 18, item 3): old shapes are upcast on read, in one place, to
 * the current shape; the writer writes current; a log from a newer isogroup is refused with its
 * position and version; and the hash chain vouches for the entries AS STORED, never their upcast
 * form.
 *
 * Two deliberate shape changes are made here, each installed for one test only:
 * - the past: "v0" shapes of two event types (a documented example of how an upcaster is written,
 *   see docs/model.md#event-versions) — `Mapped` v0 said `size` where v1 says `last`, and
 *   `AccessGranted` v0 said `user` where v1 says `uid`. The frozen v1 log rewritten in those shapes
 *   (and chained over them) must give the frozen answers.
 * - the future: a `KvmAssociated` v2 that adds a field. The frozen v1 log, untouched, must still
 *   give exactly its pinned answers (chain heads included), every KvmAssociated read must arrive
 *   in the v2 shape, and what this world writes, today's world refuses to read.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EVENT_VERSIONS, defineUpcasting, upcastEvent, useUpcasting, type Upcaster } from '../../domain/schema/upcast.js';
import { createMemoryStore, openFileStore, StoreError, type RecordedEvent } from '../../src/store/index.js';
import pg from 'pg';
import { entryHash, verifyChain } from '../../src/store/chain.js';
import { storeChainEntries } from '../../src/store/integrity.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { encodeLine } from '../../src/store/file-format.js';
import { storedForm } from '../../src/store/upcast.js';
import { cli, tempDir } from '../cli/run.js';
import { FROZEN_DIR, answers } from './frozen-kit.js';

type Obj = Record<string, unknown>;

// ---- the past: v0 shapes of Mapped and AccessGranted ------------------------------------------

const hex = (n: bigint): string => `0x${n.toString(16)}`;

/** v0 → v1 upcasters, written the way docs/model.md says: pure, one step, nothing the reducer reads lost. */
const V0_UPCASTERS: Upcaster[] = [
  {
    type: 'Mapped',
    from: 0,
    why: 'the end of a mapping is its last byte (inclusive), as everywhere else, not a size',
    upcast: ({ data }) => {
      const { size, ...rest } = data;
      return { data: { ...rest, last: hex(BigInt(rest.iova as string) + BigInt(size as string) - 1n) } };
    },
  },
  {
    type: 'AccessGranted',
    from: 0,
    why: 'the grantee is a uid, named like every other uid',
    upcast: ({ data }) => {
      const { user, ...rest } = data;
      return { data: { ...rest, uid: user } };
    },
  },
];

/** The same two changes run backwards: what a v0 writer wrote for a v1 entry. */
const toV0 = (type: string, data: Obj): Obj | undefined => {
  if (type === 'Mapped') {
    const { last, ...rest } = data;
    return { ...rest, size: hex(BigInt(last as string) - BigInt(rest.iova as string) + 1n) };
  }
  if (type === 'AccessGranted') {
    const { uid, ...rest } = data;
    return { ...rest, user: uid };
  }
  return undefined;
};

/** The frozen v1 log rewritten by a "v0 writer": v0 shapes with meta.v = 0, chained and checksummed over them. */
const v0Log = (): { text: string; rewritten: number } => {
  const heads = new Map<string, string>();
  let rewritten = 0;
  const lines = readFileSync(join(FROZEN_DIR, 'v1.jsonl'), 'utf8').split('\n').filter(Boolean);
  const out = lines.map((l) => {
    const { crc: _crc, batch, ...e } = JSON.parse(l) as Obj & { batch?: number };
    const old = toV0(e.type as string, e.data as Obj);
    if (old) rewritten += 1;
    const entry = { ...e, ...(old ? { data: old, meta: { ...(e.meta as Obj), v: 0 } } : {}) } as unknown as RecordedEvent;
    const prev = heads.get(entry.stream!) ?? '0'.repeat(64);
    const hash = entryHash({ ...entry, prev });
    heads.set(entry.stream!, hash);
    return encodeLine({ ...entry, prev, hash }, batch);
  });
  return { text: out.join(''), rewritten };
};

let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
});

const headless = (a: Record<string, unknown>): Record<string, unknown> =>
  JSON.parse(JSON.stringify(a, (k, v: unknown) => (k === 'head' ? '(chain head)' : v))) as Record<string, unknown>;

describe('upcasting old event versions on read', () => {
  test('an entry already in the current shape is passed through as the same object (the hot path costs nothing)', () => {
    const e = { type: 'Mapped', data: { domain: 'd' }, meta: { at: 'x' } };
    expect(upcastEvent(e)).toBe(e);
  });

  test('the frozen log written in v0 shapes replays to the frozen answers (only the chain heads differ: other bytes were hashed)', async () => {
    const { text, rewritten } = v0Log();
    expect(rewritten).toBe(6); // 2 Mapped and 1 AccessGranted per host
    const file = join(tempDir(), 'v0.jsonl');
    writeFileSync(file, text);
    restore = useUpcasting(defineUpcasting(EVENT_VERSIONS, V0_UPCASTERS));
    const got = await answers(file);
    const expected = JSON.parse(readFileSync(join(FROZEN_DIR, 'v1.expected.json'), 'utf8')) as Record<string, unknown>;
    expect(headless(got)).toEqual(headless(expected));
    expect(got['local: check --integrity']).toMatchObject({ code: 0, answer: [{ ok: true, entries: 36 }] });
  });

  test('without the upcaster, a v0 entry is refused with its position and version, not misread', async () => {
    const file = join(tempDir(), 'v0.jsonl');
    writeFileSync(file, v0Log().text);
    const r = await cli(['--store', `file:${file}`, '--json', 'groups']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/host-local #\d+: a (Mapped|AccessGranted) entry of version 0: no upcaster from version 0 to 1/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('the chain is verified over the entries as stored: a verified replay passes, hashing the upcast form would not, and an edit of a v0 entry is caught', async () => {
    const { text } = v0Log();
    const dir = tempDir();
    const file = join(dir, 'v0.jsonl');
    writeFileSync(file, text);
    restore = useUpcasting(defineUpcasting(EVENT_VERSIONS, V0_UPCASTERS));
    expect((await cli(['--store', `file:${file}`, '--json', 'replay', '--verify'])).code).toBe(0);

    const store = await openFileStore(file, { readOnly: true });
    const read: RecordedEvent[] = [];
    for await (const e of store.read('host-local')) read.push(e);
    await store.close();
    const mapped = read.find((e) => e.type === 'Mapped')!;
    expect(mapped.data).toHaveProperty('last');
    expect(mapped.meta.v).toBeUndefined();
    expect(storedForm(mapped).data).toHaveProperty('size');
    expect(storedForm(mapped).meta.v).toBe(0);
    expect(entryHash(mapped)).toBe(mapped.hash);
    // A copy has no stored form behind it: hashed as upcast, it no longer matches. The chain must never be checked that way.
    expect(entryHash({ ...mapped })).not.toBe(mapped.hash);

    // An edit of the stored v0 bytes is still found, at its position, as an edit.
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.includes('"type":"Mapped"') && l.includes('"stream":"host-local"'));
    lines[at] = lines[at]!.replace(/"size":"0x[0-9a-f]+"/, '"size":"0x2000000"');
    writeFileSync(file, lines.join('\n'));
    const r = await cli(['--store', `file:${file}`, '--json', 'check', '--integrity']);
    expect(r.code).toBe(1);
    expect(r.json()[0]).toMatchObject({ ok: false, break: { pos: mapped.pos, kind: 'edited' } });
  });

  test('export writes the entries as stored, and import of that export lands them in the current shape (chain checked as given)', async () => {
    const dir = tempDir();
    const file = join(dir, 'v0.jsonl');
    writeFileSync(file, v0Log().text);
    restore = useUpcasting(defineUpcasting(EVENT_VERSIONS, V0_UPCASTERS));
    const exported = await cli(['--store', `file:${file}`, 'export']);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toContain('"size":"0x');
    const target = `file:${join(dir, 'imported.jsonl')}`;
    const imp = await cli(['--store', target, '--host', 'copy', '--json', 'import', '-'], { stdin: exported.stdout });
    expect(imp.code).toBe(0);
    const written = readFileSync(join(dir, 'imported.jsonl'), 'utf8');
    expect(written).not.toContain('"size":"0x');
    expect(written).not.toContain('"v":0');
    expect(written).toContain('"last":"0x');
    expect((await cli(['--store', target, '--host', 'copy', '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true });
  });
});

test('PostgreSQL reads through the same step: v0 rows (written with SQL) arrive upcast, and their chain checks over the rows as stored', async () => {
  const server = process.env.ISOGROUP_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
  const schema = `isogroup_audit_upcast_${process.pid}`;
  const url = `${server}?schema=${schema}`;
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  const store = await openPostgresStore(url);
  try {
    const rows = v0Log().text.split('\n').filter((l) => l.includes('"stream":"host-local"'));
    await client.query(
      `INSERT INTO "${schema}".isogroup_events (stream, pos, event_id, type, data, meta, prev, hash)
       SELECT e->>'stream', (e->>'pos')::bigint, e->>'id', e->>'type', e->'data', e->'meta', e->>'prev', e->>'hash' FROM jsonb_array_elements($1::jsonb) e`,
      [JSON.stringify(rows.map((l) => JSON.parse(l) as unknown))],
    );
    restore = useUpcasting(defineUpcasting(EVENT_VERSIONS, V0_UPCASTERS));
    const read: RecordedEvent[] = [];
    for await (const e of store.read('host-local')) read.push(e);
    const mapped = read.filter((e) => e.type === 'Mapped');
    expect(mapped).toHaveLength(2);
    for (const e of mapped) {
      expect(e.data).toHaveProperty('last');
      expect(storedForm(e).data).toHaveProperty('size');
    }
    expect(verifyChain(await storeChainEntries(store, 'host-local'))).toMatchObject({ ok: true, entries: 36 });
  } finally {
    await store.close();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
});

// ---- the future: KvmAssociated v2 -----------------------------------------------------------

const V2 = defineUpcasting({ ...EVENT_VERSIONS, KvmAssociated: 2 }, [
  {
    type: 'KvmAssociated',
    from: 1,
    why: 'say which hypervisor the context belongs to (every v1 association was KVM)',
    upcast: ({ data }) => ({ data: { ...data, hypervisor: 'kvm' } }),
  },
]);

describe('a deliberate shape change (KvmAssociated v2): the frozen v1 log still gives the same answers', () => {
  test('every pinned answer is unchanged, chain heads included (the audit\'s copies of the entries in the v2 shape), and the upcaster ran on every KvmAssociated', async () => {
    restore = useUpcasting(V2);
    const got = await answers('v1.jsonl');
    const pinned = JSON.parse(readFileSync(join(FROZEN_DIR, 'v1.expected.json'), 'utf8')) as Record<string, unknown>;
    // The audit quotes each entry: under v2 it quotes the current shape, which is the pinned entry upcast.
    let quoted = 0;
    const expected = JSON.parse(JSON.stringify(pinned), (_k, v: unknown) => {
      const e = v as { type?: unknown; data?: unknown; meta?: unknown };
      if (e !== null && typeof e === 'object' && e.type === 'KvmAssociated' && typeof e.data === 'object' && typeof e.meta === 'object') {
        quoted += 1;
        return { ...e, ...upcastEvent(e as { type: string; data: Obj; meta: Obj }, V2) };
      }
      return v;
    }) as Record<string, unknown>;
    expect(quoted).toBe(2);
    expect(got).toEqual(expected);

    const store = await openFileStore(join(FROZEN_DIR, 'v1.jsonl'), { readOnly: true });
    const kvm: RecordedEvent[] = [];
    for (const stream of await store.streams()) for await (const e of store.read(stream)) if (e.type === 'KvmAssociated') kvm.push(e);
    await store.close();
    expect(kvm).toHaveLength(2);
    for (const e of kvm) {
      expect(e.data).toMatchObject({ hypervisor: 'kvm' });
      expect(e.meta.v).toBe(2);
      expect(storedForm(e).data).not.toHaveProperty('hypervisor');
    }
  });

  test('the writer writes current (meta.v 2); today\'s isogroup refuses that log naming the position and the version', async () => {
    restore = useUpcasting(V2);
    const file = join(tempDir(), 'log.jsonl');
    const exported = await cli(['--store', `file:${join(FROZEN_DIR, 'v1.jsonl')}`, 'export']);
    const imp = await cli(['--store', `file:${file}`, 'import', '-'], { stdin: exported.stdout });
    expect(imp.code).toBe(0);
    const line = readFileSync(file, 'utf8').split('\n').find((l) => l.includes('"type":"KvmAssociated"'))!;
    expect(JSON.parse(line)).toMatchObject({ data: { hypervisor: 'kvm' }, meta: { v: 2 } });
    const pos = (JSON.parse(line) as { pos: number }).pos;
    restore();
    restore = undefined;
    const r = await cli(['--store', `file:${file}`, '--json', 'groups']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `isogroup: host-local #${pos}: a KvmAssociated entry of version 2: this isogroup reads KvmAssociated up to version 1; upgrade isogroup to read this log`,
    );
    // The chain does not depend on who reads it: the bytes as stored check out either way.
    expect((await cli(['--store', `file:${file}`, '--json', 'check', '--integrity'])).json()[0]).toMatchObject({ ok: true });
  });

  test('every store\'s writer goes through the same door: stamped when current, upcast when older, refused when newer', async () => {
    restore = useUpcasting(V2);
    const store = createMemoryStore();
    const meta = { at: '2026-01-01T00:00:00.000Z', actor: { uid: 0 }, host: 'h' };
    await store.append('host-h', [
      { id: 'a', type: 'KvmAssociated', data: { ctx: 'c', vm: 'v', hypervisor: 'xen' }, meta },
      { id: 'b', type: 'KvmAssociated', data: { ctx: 'c', vm: 'w' }, meta: { ...meta, v: 1 } },
    ]);
    const read: RecordedEvent[] = [];
    for await (const e of store.read('host-h')) read.push(e);
    expect(read.map((e) => [e.data, e.meta.v])).toEqual([
      [{ ctx: 'c', vm: 'v', hypervisor: 'xen' }, 2],
      [{ ctx: 'c', vm: 'w', hypervisor: 'kvm' }, 2],
    ]);
    await expect(store.append('host-h', [{ id: 'c', type: 'KvmAssociated', data: { ctx: 'c', vm: 'v' }, meta: { ...meta, v: 3 } }])).rejects.toThrow(
      new StoreError('host-h #3: a KvmAssociated entry of version 3: this isogroup reads KvmAssociated up to version 2; upgrade isogroup to read this log', 'ENEWER'),
    );
    await store.close();
  });
});

/**
 * The store contract as a reusable suite: every backend runs it. The suite opens one store and
 * gives every test its own streams (`host-c<run>-<n>-…`), so it also works against a shared server
 * that already holds other events: global-order checks only look at the test's own streams.
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { EventStore, NewEvent, RecordedEvent, Subscription } from '../../src/store/types.js';
import { ExpectedVersionConflictError } from '../../src/store/types.js';
import { GENESIS, verifyChain } from '../../src/store/chain.js';

export const newEvent = (type = 'TestHappened', data: Record<string, unknown> = {}): NewEvent => ({
  id: randomUUID(),
  type,
  data,
  meta: { at: new Date().toISOString(), actor: { uid: 0, comm: 'jest' }, host: 'test' },
});

export const events = (count: number, type = 'TestHappened'): NewEvent[] =>
  Array.from({ length: count }, (_, i) => newEvent(type, { i }));

export const collect = async <T>(iterable: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
};

/** Polls until `condition` holds; the timeout only turns a hang into a readable failure. */
export const waitFor = async (condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

export const conflictOf = async (promise: Promise<unknown>): Promise<ExpectedVersionConflictError> => {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ExpectedVersionConflictError);
    return error as ExpectedVersionConflictError;
  }
  throw new Error('expected an ExpectedVersionConflictError, the append succeeded');
};

export const describeStoreConformance = (name: string, factory: () => Promise<EventStore>): void => {
  describe(`${name}: store conformance`, () => {
    let store: EventStore;
    const run = randomUUID().slice(0, 8);
    let counter = 0;
    /** A fresh prefix per test: `host-c<run>-<n>-`. */
    const prefix = (): string => `host-c${run}-${++counter}-`;
    const ours = async (p: string, after?: string): Promise<RecordedEvent[]> =>
      (await collect(store.readAll(after))).filter((e) => e.stream?.startsWith(p));

    beforeAll(async () => {
      store = await factory();
    });
    afterAll(async () => {
      await store?.close();
    });

    test('append to a new stream numbers events from 1 and reports the version', async () => {
      const s = `${prefix()}a`;
      const batch = events(3);
      const result = await store.append(s, batch, { expectedVersion: 'no-stream' });
      expect(result.nextExpectedVersion).toBe(3);
      expect(result.events.map((e) => [e.pos, e.id])).toEqual(batch.map((e, i) => [i + 1, e.id]));
      expect(await store.version(s)).toBe(3);
      const more = await store.append(s, events(2), { expectedVersion: 3 });
      expect(more.events.map((e) => e.pos)).toEqual([4, 5]);
      expect(await store.version(s)).toBe(5);
    });

    test('a numeric expected version must equal the current version', async () => {
      const s = `${prefix()}a`;
      await store.append(s, events(2));
      for (const wrong of [0, 1, 3]) {
        const error = await conflictOf(store.append(s, events(1), { expectedVersion: wrong }));
        expect(error).toMatchObject({ code: 'EVERSION', stream: s, expected: wrong, actual: 2 });
      }
      expect(await store.version(s)).toBe(2);
      await store.append(s, events(1), { expectedVersion: 2 });
      expect(await store.version(s)).toBe(3);
      // 0 is the version of a stream that does not exist.
      await store.append(`${s}-zero`, events(1), { expectedVersion: 0 });
      expect(await store.version(`${s}-zero`)).toBe(1);
    });

    test("'no-stream', 'stream-exists' and 'any'", async () => {
      const s = `${prefix()}a`;
      expect(await conflictOf(store.append(s, events(1), { expectedVersion: 'stream-exists' }))).toMatchObject({
        expected: 'stream-exists',
        actual: 0,
      });
      expect(await store.version(s)).toBe(0);
      await store.append(s, events(1), { expectedVersion: 'no-stream' });
      expect(await conflictOf(store.append(s, events(1), { expectedVersion: 'no-stream' }))).toMatchObject({
        expected: 'no-stream',
        actual: 1,
      });
      await store.append(s, events(1), { expectedVersion: 'stream-exists' });
      await store.append(s, events(1), { expectedVersion: 'any' });
      await store.append(s, events(1));
      expect(await store.version(s)).toBe(4);
    });

    test('re-appending the same event ids is a no-op that returns the recorded events', async () => {
      const s = `${prefix()}a`;
      const batch = events(2);
      const first = await store.append(s, batch, { expectedVersion: 'no-stream' });
      const retry = await store.append(s, batch, { expectedVersion: 'no-stream' });
      expect(retry.events.map((e) => [e.pos, e.id])).toEqual(first.events.map((e) => [e.pos, e.id]));
      expect(retry.nextExpectedVersion).toBe(2);
      const third = newEvent();
      await store.append(s, [third], { expectedVersion: 2 });
      const late = await store.append(s, batch, { expectedVersion: 'any' });
      expect(late.events.map((e) => e.pos)).toEqual([1, 2]);
      expect(await store.version(s)).toBe(3);
      // Half of a batch already there cannot be a retry: it is a conflict, and nothing is appended.
      await conflictOf(store.append(s, [batch[1]!, newEvent()], { expectedVersion: 'any' }));
      expect(await store.version(s)).toBe(3);
      expect((await collect(store.read(s))).map((e) => e.id)).toEqual([
        batch[0]!.id,
        batch[1]!.id,
        third.id,
      ]);
    });

    test('events that are not JSON, or repeat an id, are refused whole', async () => {
      const s = `${prefix()}a`;
      await expect(store.append(s, [newEvent(), newEvent('T', { big: 1n })])).rejects.toMatchObject({ code: 'EINVAL' });
      const twice = newEvent();
      await expect(store.append(s, [twice, twice])).rejects.toMatchObject({ code: 'EINVAL' });
      expect(await store.version(s)).toBe(0);
    });

    test('an empty append changes nothing but still checks the expected version', async () => {
      const s = `${prefix()}a`;
      expect((await store.append(s, [], { expectedVersion: 'no-stream' })).nextExpectedVersion).toBe(0);
      await store.append(s, events(1));
      await conflictOf(store.append(s, [], { expectedVersion: 0 }));
      expect((await store.append(s, [], { expectedVersion: 1 })).nextExpectedVersion).toBe(1);
      expect(await store.version(s)).toBe(1);
    });

    test('read a stream whole and from/to; a missing stream reads as empty', async () => {
      const s = `${prefix()}a`;
      const batch = events(10);
      await store.append(s, batch);
      const all = await collect(store.read(s));
      expect(all.map((e) => e.pos)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(all.map((e) => e.id)).toEqual(batch.map((e) => e.id));
      expect(all.every((e) => e.stream === s)).toBe(true);
      expect((await collect(store.read(s, { from: 4, to: 6 }))).map((e) => e.pos)).toEqual([4, 5, 6]);
      expect((await collect(store.read(s, { from: 9 }))).map((e) => e.pos)).toEqual([9, 10]);
      expect((await collect(store.read(s, { to: 2 }))).map((e) => e.pos)).toEqual([1, 2]);
      expect(await collect(store.read(s, { from: 11 }))).toEqual([]);
      expect(await collect(store.read(`${s}-missing`))).toEqual([]);
      expect(await store.version(`${s}-missing`)).toBe(0);
    });

    test('type, data and meta come back as they went in', async () => {
      const s = `${prefix()}a`;
      const data = {
        device: '0000:03:00.1',
        range: { start: '0x1f000', last: '0xffffffffffffffff' },
        nested: [1, 'two', { three: null, four: true }],
        text: 'ünïcødé ✓ "quoted" \\ back\nslash',
        empty: {},
      };
      const event: NewEvent = {
        id: randomUUID(),
        type: 'DomainMapped',
        data,
        meta: { at: '2026-11-21T10:00:00.000Z', actor: { uid: 1000, comm: 'qemu' }, host: 'h1', command: 'c1', correlation: 'k1', observed: true },
      };
      await store.append(s, [event]);
      const [back] = await collect(store.read(s));
      expect(back).toMatchObject({ pos: 1, id: event.id, type: 'DomainMapped', stream: s });
      expect(back?.data).toEqual(data);
      expect(back?.meta).toEqual(event.meta);
    });

    test('readAll gives every stream in global (append) order with increasing checkpoints', async () => {
      const p = prefix();
      const appended: string[] = [];
      for (let i = 0; i < 40; i += 1) {
        const batch = events(1 + (i % 3));
        await store.append(`${p}s${(i * 7) % 12}`, batch);
        appended.push(...batch.map((e) => e.id));
      }
      const all = await ours(p);
      expect(all.map((e) => e.id)).toEqual(appended);
      const checkpoints = all.map((e) => e.checkpoint ?? '');
      expect(checkpoints.every((c) => c !== '')).toBe(true);
      for (let i = 1; i < checkpoints.length; i += 1) expect(checkpoints[i - 1]! < checkpoints[i]!).toBe(true);
      // Within a stream, global order agrees with positions.
      const byStream = new Map<string, number>();
      for (const e of all) {
        expect(e.pos).toBe((byStream.get(e.stream!) ?? 0) + 1);
        byStream.set(e.stream!, e.pos);
      }
    });

    test('readAll(after) resumes with exactly the rest', async () => {
      const p = prefix();
      for (let i = 0; i < 12; i += 1) await store.append(`${p}s${i % 4}`, events(1 + (i % 2)));
      const all = await ours(p);
      for (const cut of [0, 1, 7, all.length - 2, all.length - 1]) {
        const rest = await ours(p, all[cut]!.checkpoint);
        expect(rest.map((e) => e.id)).toEqual(all.slice(cut + 1).map((e) => e.id));
      }
    });

    test('subscribe: catch-up then live, nothing lost or duplicated across the switch', async () => {
      const p = prefix();
      for (let i = 0; i < 30; i += 1) await store.append(`${p}s${i % 3}`, events(1));
      const received: RecordedEvent[] = [];
      let duringCatchUp: Promise<unknown> | undefined;
      let active = 0;
      let overlapped = false;
      const sub = store.subscribe({
        onEvent: async (e) => {
          active += 1;
          if (active > 1) overlapped = true;
          if (e.stream?.startsWith(p)) {
            received.push(e);
            // Appends racing the catch-up: one awaited inside the handler, one left running.
            if (received.length === 1) await store.append(`${p}s0`, events(2));
            if (received.length === 2) duringCatchUp = store.append(`${p}s1`, events(3));
          }
          await new Promise((resolve) => setImmediate(resolve));
          active -= 1;
        },
      });
      try {
        await sub.caughtUp;
        expect(received.length).toBeGreaterThanOrEqual(30);
        await duringCatchUp;
        for (let i = 0; i < 10; i += 1) await store.append(`${p}s${i % 4}`, events(1 + (i % 2)));
        const expected = await ours(p);
        expect(expected.length).toBe(30 + 2 + 3 + 15);
        await waitFor(() => received.length >= expected.length, 'the live events');
        expect(received.map((e) => e.id)).toEqual(expected.map((e) => e.id));
        expect(received.map((e) => e.checkpoint)).toEqual(expected.map((e) => e.checkpoint));
        expect(overlapped).toBe(false);
      } finally {
        await sub.close();
      }
    });

    test('subscribe({after}) resumes with exactly the rest; subscribe({stream}) filters', async () => {
      const p = prefix();
      for (let i = 0; i < 9; i += 1) await store.append(`${p}s${i % 3}`, events(1));
      const all = await ours(p);
      const received: RecordedEvent[] = [];
      const onlyS1: RecordedEvent[] = [];
      const subs: Subscription[] = [
        store.subscribe({ after: all[4]!.checkpoint, onEvent: (e) => void (e.stream?.startsWith(p) && received.push(e)) }),
        store.subscribe({ stream: `${p}s1`, onEvent: (e) => void onlyS1.push(e) }),
      ];
      try {
        await Promise.all(subs.map((s) => s.caughtUp));
        await store.append(`${p}s1`, events(1));
        await waitFor(() => received.length === 5 && onlyS1.length === 4, 'the resumed and filtered subscriptions');
        expect(received.map((e) => e.id)).toEqual((await ours(p, all[4]!.checkpoint)).map((e) => e.id));
        expect(onlyS1.map((e) => [e.stream, e.pos])).toEqual([1, 2, 3, 4].map((pos) => [`${p}s1`, pos]));
      } finally {
        await Promise.all(subs.map((s) => s.close()));
      }
    });

    test('a closed subscription gets nothing more; a failing handler ends it through onError', async () => {
      const p = prefix();
      await store.append(`${p}a`, events(1));
      const closedOne: RecordedEvent[] = [];
      const first = store.subscribe({ stream: `${p}a`, onEvent: (e) => void closedOne.push(e) });
      await first.caughtUp;
      await first.close();
      const errors: Error[] = [];
      let calls = 0;
      const failing = store.subscribe({
        stream: `${p}a`,
        onEvent: () => {
          calls += 1;
          throw new Error('handler broke');
        },
        onError: (e) => void errors.push(e),
      });
      await store.append(`${p}a`, events(1));
      const barrier: RecordedEvent[] = [];
      const witness = store.subscribe({ stream: `${p}a`, onEvent: (e) => void barrier.push(e) });
      try {
        await waitFor(() => barrier.length === 2 && errors.length === 1, 'the witness and the error');
        expect(closedOne.map((e) => e.pos)).toEqual([1]);
        expect(errors[0]?.message).toBe('handler broke');
        expect(calls).toBe(1);
      } finally {
        await witness.close();
        await failing.close();
      }
    });

    test('concurrent appends: one winner per expected version; with any, positions stay gap-free', async () => {
      const s = `${prefix()}a`;
      await store.append(s, events(1));
      const outcomes = await Promise.allSettled(
        Array.from({ length: 5 }, () => store.append(s, events(2), { expectedVersion: 1 })),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(ExpectedVersionConflictError);
      const batches = Array.from({ length: 8 }, () => events(3));
      await Promise.all(batches.map((b) => store.append(s, b)));
      const read = await collect(store.read(s));
      expect(read.map((e) => e.pos)).toEqual(Array.from({ length: 3 + 24 }, (_, i) => i + 1));
      expect(new Set(read.map((e) => e.id)).size).toBe(read.length);
      // Each batch stays contiguous.
      for (const b of batches) {
        const at = read.findIndex((e) => e.id === b[0]!.id);
        expect(read.slice(at, at + 3).map((e) => e.id)).toEqual(b.map((e) => e.id));
      }
    });

    test('hash chain: every entry links to its predecessor, across appends, concurrent writers and idempotent retries', async () => {
      const s = `${prefix()}chain`;
      const first = await store.append(s, events(3));
      expect(first.events[0]!.prev).toBe(GENESIS);
      for (const e of first.events) expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
      await store.append(s, events(1), { expectedVersion: 3 });
      const retried = events(2);
      await store.append(s, retried);
      const again = await store.append(s, retried);
      expect(again.events.map((e) => e.hash)).toEqual((await collect(store.read(s, { from: 5 }))).map((e) => e.hash));
      await Promise.all(Array.from({ length: 4 }, () => store.append(s, events(2))));
      const read = await collect(store.read(s));
      expect(read).toHaveLength(14);
      const report = verifyChain(read);
      expect(report).toMatchObject({ ok: true, entries: 14, unchained: 0, head: read[13]!.hash });
      // What append returned is what a reader sees.
      expect(first.events.map((e) => [e.prev, e.hash])).toEqual(read.slice(0, 3).map((e) => [e.prev, e.hash]));
      // Other streams have chains of their own.
      const other = `${prefix()}chain-b`;
      expect((await store.append(other, events(1))).events[0]!.prev).toBe(GENESIS);
    });

    test('many streams, all listed by streams()', async () => {
      const p = prefix();
      const names = Array.from({ length: 25 }, (_, i) => `${p}h${String(i).padStart(2, '0')}`);
      for (const n of names) await store.append(n, events(1));
      const listed = (await store.streams()).filter((n) => n.startsWith(p));
      expect(listed.sort()).toEqual(names);
    });
  });
};

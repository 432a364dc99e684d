/**
 * What the tamper suites share (the file store's, and PostgreSQL's edited with SQL): the log they
 * tamper with, and random edits of its values.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createManager } from '../../src/manager.js';
import { DEMO_COMMANDS } from '../../src/demo.js';
import { openFileStore } from '../../src/store/file.js';
import type { Rng } from '../../src/testkit/prng.js';
import { entryHash, type BreakKind, type IntegrityReport } from '../../src/store/chain.js';
import { randomUUID } from 'node:crypto';
import { tempDir } from '../cli/run.js';

export type Line = Record<string, unknown>;

/** A log with two interleaved hosts: commands, refusals, alerts and observed (imported) events. */
export const buildLog = async (): Promise<Line[]> => {
  const dir = tempDir();
  const file = join(dir, 'log.jsonl');
  const store = await openFileStore(file);
  const a = createManager({ store, host: 'a' });
  const b = createManager({ store, host: 'b' });
  await a.load();
  await b.load();
  const half = Math.floor(DEMO_COMMANDS.length / 2);
  await a.execMany(DEMO_COMMANDS.slice(0, half));
  await b.execMany(DEMO_COMMANDS);
  await a.execMany(DEMO_COMMANDS.slice(half));
  const observed = [];
  for await (const e of store.read('host-b')) observed.push({ type: e.type, data: e.data, meta: { ...e.meta, host: 'a' } });
  await a.import(observed);
  await store.close();
  return readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Line);
};

export const randomHex = (rng: Rng): string => Array.from({ length: 64 }, () => '0123456789abcdef'[rng.int(16)]).join('');

/** Changes one leaf of a JSON value (a string, number, boolean or null somewhere inside). */
export const mutateLeaf = (rng: Rng, value: unknown): unknown => {
  if (typeof value === 'string') return value === '' ? 'x' : rng.chance(0.5) ? `${value}x` : value.slice(0, -1) + (value.endsWith('0') ? '1' : '0');
  if (typeof value === 'number') return value + 1 + rng.int(3);
  if (typeof value === 'boolean') return !value;
  if (value === null) return 0;
  if (Array.isArray(value)) {
    if (value.length === 0) return [0];
    const copy = [...value];
    const i = rng.int(copy.length);
    copy[i] = mutateLeaf(rng, copy[i]);
    return copy;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 0) return { x: 1 };
  const k = rng.pick(keys);
  return { ...obj, [k]: mutateLeaf(rng, obj[k]) };
};


/** Notes a failure unless the report names `kind` at `pos`. */
export const expectBreak = (r: IntegrityReport, pos: number, kind: BreakKind, what: string, failures: string[]): void => {
  if (r.ok || r.break?.pos !== pos || r.break.kind !== kind) {
    failures.push(`${what}: expected ${kind} at ${pos}, got ${r.ok ? 'ok' : `${r.break?.kind} at ${r.break?.pos} (${r.break?.message})`}`);
  }
};

/**
 * An entry to insert at `pos` of `stream`: a copy of `template` under a new id that links to the
 * template's predecessor, to the entry it displaces (`before`), or to nothing real; hashed
 * correctly, left with the template's hash, or without one; with its data changed or not.
 */
export const forgeEntry = (rng: Rng, template: Line, pos: number, stream: string, before: string): { forged: Line; prevMode: number; hashMode: number } => {
  const forged: Line = { ...template, id: randomUUID(), pos, stream };
  const prevMode = rng.int(3);
  forged.prev = prevMode === 0 ? template.prev : prevMode === 1 ? before : randomHex(rng);
  const hashMode = rng.int(3);
  if (hashMode === 1) forged.hash = entryHash(forged as never);
  if (hashMode === 2) delete forged.hash;
  if (rng.chance(0.5)) forged.data = mutateLeaf(rng, forged.data);
  if (hashMode === 1) forged.hash = entryHash(forged as never);
  return { forged, prevMode, hashMode };
};

/**
 * Where `serve`'s memory goes, by component (issue 16): heap after a full GC at each stage of
 * opening a host the way `serve` does, on a log built by the snapshot cases. Not a timed case.
 *
 *   node --expose-gc dist/bench/serve-heap.js bench/out/mapped.jsonl [heap-snapshot-file]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { writeHeapSnapshot } from 'node:v8';
import { createHostRegistry } from '../src/server/hosts.js';
import { decodeSnapshot } from '../src/snapshot/format.js';
import { openFileStore } from '../src/store/file.js';
import { snapshotDir } from '../src/store/snapshots-file.js';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
const stage = (name: string): number => {
  gc();
  gc();
  const m = process.memoryUsage();
  process.stdout.write(
    `${name.padEnd(48)} heap ${mib(m.heapUsed).padStart(10)} (of ${mib(m.heapTotal)})  external ${mib(m.external).padStart(10)} (array buffers ${mib(m.arrayBuffers)})  rss ${mib(m.rss).padStart(10)}\n`,
  );
  return m.heapUsed + m.external;
};

const main = async (): Promise<void> => {
  const [path, heapFile] = process.argv.slice(2);
  if (!path) throw new Error('usage: serve-heap.js LOG [HEAP_SNAPSHOT]');
  const base = stage('node alone');
  const snaps = readdirSync(snapshotDir(path)).filter((n) => n.endsWith('.snap')).sort();
  const box: { held: unknown } = { held: decodeSnapshot(readFileSync(`${snapshotDir(path)}/${snaps[snaps.length - 1]!}`)).content.state };
  const withState = stage('a decoded snapshot (the state alone)');
  box.held = null;
  const cleared = stage('dropped again');
  const store = await openFileStore(path, { readOnly: true, lazy: true, warn: () => undefined });
  const version = await store.version('host-local');
  for await (const e of store.read('host-local', { from: version, to: version })) box.held = e.pos;
  const indexed = stage(`the file store's read index (${version} entries)`);
  const registry = createHostRegistry({ store });
  const h = await registry.get('local');
  const ready = stage(`serve's host ready (#${h.manager.state.pos})`);
  await h.sentenceContext(h.manager.state.pos);
  const fed = stage('sentence/problem scan done');
  await h.stateAt(Math.floor(h.manager.state.pos / 3));
  await h.stateAt(Math.floor(h.manager.state.pos / 2));
  const travelled = stage('after time travel to 1/3 and 1/2');
  process.stdout.write(
    `\nstate ${mib(withState - base)}; store index ${mib(indexed - cleared)}; host ready +${mib(ready - indexed)} (state, timeline, kept states); scan +${mib(fed - ready)}; ` +
      `time travel +${mib(travelled - fed)}; kept states at ${h.manager.keptStates().join(', ')}; entries ${h.manager.state.pos}\n`,
  );
  if (heapFile) process.stdout.write(`heap snapshot: ${writeHeapSnapshot(heapFile)}\n`);
  await registry.close();
  await store.close();
};

await main();

/**
 * The baseline of the memory cases (12, 13): a bare node process that holds only the state the
 * writer or `serve` would restore (the newest persisted snapshot of the log), and, with `--store`,
 * the same plus the file store opened as `serve` opens it with its read index built. It prints
 * `rss <bytes> heap <bytes>` after a full GC and exits.
 *
 *   node --expose-gc dist/bench/hold-state.js SNAPSHOT [LOG]
 */
import { readFileSync } from 'node:fs';
import { decodeSnapshot } from '../src/snapshot/format.js';
import { openFileStore } from '../src/store/file.js';

const main = async (): Promise<void> => {
  const [snapshot, log] = process.argv.slice(2);
  const held: unknown[] = [];
  if (snapshot) held.push(decodeSnapshot(readFileSync(snapshot)).content.state);
  if (log) {
    const store = await openFileStore(log, { readOnly: true, lazy: true, warn: () => undefined });
    // One read of the last entry: the read index `serve`'s first log request builds.
    const version = await store.version('host-local');
    for await (const e of store.read('host-local', { from: version, to: version })) held.push(e.pos);
    held.push(store);
  }
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  process.stdout.write(`rss ${m.rss} heap ${m.heapUsed} held ${held.length}\n`);
};

await main();

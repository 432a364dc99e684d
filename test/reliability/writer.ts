/**
 * The writer child of the crash test (crash.test.ts), run from dist/ as
 *
 *   node dist/test/reliability/writer.js LOG COMMANDS.jsonl exec|many [CHUNK]
 *
 * Opens `file:LOG` with the manager, prints `{"ready":pos}`, runs the commands (`exec`: one at a
 * time; `many`: execMany in groups of 1-16, one append per group) and prints one line per command
 * as soon as its append has resolved (`{"id","ok","pos"}`), i.e. after fdatasync. Then
 * `{"done":true}`, and it waits to be killed. With CHUNK > 0 the log's writes go to disk in pieces
 * of at most CHUNK bytes, 1 ms apart (through the store's fs seam), like
 * a slow disk, so that a SIGKILL often lands in the middle of an append.
 */
import { readFileSync } from 'node:fs';
import { createManager } from '../../src/manager.js';
import { openFileStore } from '../../src/store/file.js';
import type { StoreFs } from '../../src/store/file-fs.js';
import { realFs } from '../../src/store/file-fs.js';

const [log, commandsFile, mode = 'exec', chunkArg = '0'] = process.argv.slice(2);
if (!log || !commandsFile) {
  process.stderr.write('usage: writer.js LOG COMMANDS.jsonl exec|many [CHUNK]\n');
  process.exit(2);
}
const chunk = Number(chunkArg);
const out = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);

const slowFs: StoreFs = {
  ...realFs,
  open: async (path, flags) => {
    const handle = await realFs.open(path, flags);
    if (path.endsWith('.lock')) return handle;
    return {
      read: (b, o, l, p) => handle.read(b, o, l, p),
      datasync: () => handle.datasync(),
      truncate: (l) => handle.truncate(l),
      stat: () => handle.stat(),
      close: () => handle.close(),
      write: async (buffer, offset, length) => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        return handle.write(buffer, offset, Math.min(length, chunk));
      },
    };
  },
};

const commands = readFileSync(commandsFile, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as { id: string });

const store = await openFileStore(log, { ...(chunk > 0 ? { fs: slowFs } : {}), warn: (m) => void process.stderr.write(`warning: ${m}\n`) });
const m = createManager({ store });
await m.load();
out({ ready: m.state.pos });
if (mode === 'many') {
  let i = 0;
  while (i < commands.length) {
    const group = commands.slice(i, i + 1 + Math.floor(Math.random() * 16));
    await m.execMany(group, (r, k) => out({ id: group[k]!.id, ok: r.ok, pos: r.pos }));
    i += group.length;
  }
} else {
  for (const c of commands) {
    const r = await m.exec(c);
    out({ id: c.id, ok: r.ok, pos: r.pos });
  }
}
out({ done: true });
setInterval(() => undefined, 1 << 30);

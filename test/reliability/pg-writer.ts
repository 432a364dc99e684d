/**
 * A writer child of the PostgreSQL drop test (pgdrop.test.ts), run from dist/ as
 *
 *   node dist/test/reliability/pg-writer.js URL HOST COMMANDS SEED
 *
 * Opens the PostgreSQL store with the manager for host HOST, prints `{"ready":pos}`, runs COMMANDS
 * plausible random commands one `exec` at a time (ids `HOST-i`) and prints `{"id","ok","pos"}` as
 * soon as each append has resolved, then `{"done":true}` and exits. The store's warnings (its one
 * line per reconnect) go to stderr. A command that fails prints `{"id","error"}` and exits 1.
 */
import { createManager } from '../../src/manager.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { SETUP, prng, randomCommand } from './kit.js';

const [url, host, countArg, seedArg] = process.argv.slice(2);
if (!url || !host || !countArg) {
  process.stderr.write('usage: pg-writer.js URL HOST COMMANDS [SEED]\n');
  process.exit(2);
}
const out = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
const rnd = prng(Number(seedArg ?? 1));
const store = await openPostgresStore(url, { warn: (m) => void process.stderr.write(`isogroup: warning: ${m}\n`) });
const m = createManager({ store, host });
await m.load();
out({ ready: m.state.pos });
const commands = [...SETUP, ...Array.from({ length: Number(countArg) }, () => randomCommand(rnd))];
for (const [i, c] of commands.entries()) {
  const id = `${host}-${i}`;
  try {
    const r = await m.exec({ ...c, id });
    out({ id, ok: r.ok, pos: r.pos });
  } catch (error) {
    out({ id, error: (error as Error).message });
    process.exit(1);
  }
}
out({ done: true });
await store.close();

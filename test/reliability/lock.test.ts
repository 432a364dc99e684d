/**
 * Single writer on a `file:` log (issue 8): a second writer gets a clear error naming the holder
 * (CLI exit 2) or waits with `--wait` until the first closes; a stale lock from a dead process is
 * taken over with a warning; a writer killed or failing while it creates the lock never leaves a
 * lock that nobody can take. Readers never need the lock. One manager serialises its own writes.
 *
 * The holder is a real second process (the CLI reading commands from a pipe we keep open, or the
 * crash test's writer child), so the pids in the lock are real. Needs dist/.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createManager } from '../../src/manager.js';
import { openFileStore } from '../../src/store/file.js';
import type { StoreFs } from '../../src/store/file-fs.js';
import { realFs } from '../../src/store/file-fs.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { StoreError } from '../../src/store/types.js';
import { evolveAll, initialState } from '../../domain/index.js';
import { cli, tempDir } from '../cli/run.js';
import { fingerprint } from './kit.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const dirs: string[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
const newLog = (): string => {
  const dir = tempDir();
  dirs.push(dir);
  return join(dir, 'log.jsonl');
};
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const until = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
};

/** `isogroup exec -` in a child whose stdin stays open: it holds the lock until we end its input. */
const holder = async (log: string): Promise<{ child: ChildProcessWithoutNullStreams; exited: Promise<number | null>; out: () => string }> => {
  const child = spawn(process.execPath, [CLI, '--store', `file:${log}`, '--json', 'exec', '-']);
  children.push(child);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => void (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await until(() => existsSync(`${log}.lock`) && readFileSync(`${log}.lock`, 'utf8').includes(`"pid":${child.pid}`), 'the holder to take the lock');
  return { child, exited, out: () => out };
};

const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

/** The real file system, except that writes to the lock file (not the log) do what `write` says. */
const lockWrites = (write: () => Promise<never>): StoreFs => ({
  ...realFs,
  open: async (path, flags) => {
    const h = await realFs.open(path, flags);
    if (path.endsWith('.jsonl')) return h;
    return {
      read: (b, o, l, p) => h.read(b, o, l, p),
      datasync: () => h.datasync(),
      truncate: (l) => h.truncate(l),
      stat: () => h.stat(),
      close: () => h.close(),
      write,
    };
  },
});

describe('single writer on a file: log', () => {
  test('a second writer gets exit 2 and a one-line error naming the holder pid; readers go on reading', async () => {
    const log = newLog();
    const store = `file:${log}`;
    expect((await cli(['--store', store, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i0"}\n' })).code).toBe(0);
    const h = await holder(log);
    const second = await cli(['--store', store, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i1"}\n' });
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`held by pid ${h.child.pid} on ${hostname()} since .*another process is writing this log`));
    expect(second.stderr.trim().split('\n')).toHaveLength(1); // no stack trace
    expect(second.stdout).toBe('');
    // import is a writer too; export/groups/check only read.
    expect((await cli(['--store', store, 'import', '-'], { stdin: '{"type":"ContextOpened","data":{"ctx":"c","kind":"iommufd","uid":0},"meta":{}}\n' })).code).toBe(2);
    const exported = await cli(['--store', store, 'export']);
    expect(exported.code).toBe(0);
    expect(exported.json()).toHaveLength(1);
    expect((await cli(['--store', store, 'check'])).code).toBe(0);
    h.child.stdin.end('{"type":"iommu.add","iommu":"i2"}\n');
    expect(await h.exited).toBe(0);
    expect(existsSync(`${log}.lock`)).toBe(false);
  });

  test('--wait: the second writer waits until the first closes, then succeeds after it', async () => {
    const log = newLog();
    const store = `file:${log}`;
    const h = await holder(log);
    let waiterDone = false;
    const waiter = cli(['--store', store, '--wait', '--json', 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"second","id":"w"}\n' }).then((r) => {
      waiterDone = true;
      return r;
    });
    // Give the waiter time to find the lock taken and start polling; it must still be waiting.
    await new Promise((r) => setTimeout(r, 400));
    expect(waiterDone).toBe(false);
    h.child.stdin.end('{"type":"iommu.add","iommu":"first","id":"h"}\n');
    const r = await waiter;
    // (Not "the holder process has exited": it releases the lock before it exits, so the waiter may
    // finish first. What matters is that the waiter only wrote after the holder: the order below.)
    expect(await h.exited).toBe(0);
    expect(r.code).toBe(0);
    expect(r.json()[0]).toMatchObject({ ok: true, pos: [2] });
    const log2 = (await cli(['--store', store, 'export'])).json<{ pos: number; data: { iommu: string }; meta: { command: string } }>();
    expect(log2.map((e) => [e.pos, e.data.iommu, e.meta.command])).toEqual([
      [1, 'first', 'h'],
      [2, 'second', 'w'],
    ]);
  });

  test('a stale lock naming a dead pid is taken over with a warning; the log is intact', async () => {
    const log = newLog();
    const store = `file:${log}`;
    await cli(['--store', store, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i0"}\n' });
    const before = readFileSync(log);
    const dead = deadPid();
    writeFileSync(`${log}.lock`, `${JSON.stringify({ pid: dead, host: hostname(), since: '2026-01-01T00:00:00.000Z' })}\n`);
    const r = await cli(['--store', store, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i1"}\n' });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`warning: took over stale lock .*"pid":${dead}.*that process is gone`));
    expect(readFileSync(log).subarray(0, before.length).equals(before)).toBe(true);
    expect(existsSync(`${log}.lock`)).toBe(false);
  });

  test('a lock from another host is never assumed stale', async () => {
    const log = newLog();
    writeFileSync(`${log}.lock`, `${JSON.stringify({ pid: deadPid(), host: 'elsewhere.example', since: '2026-01-01T00:00:00.000Z' })}\n`);
    const r = await cli(['--store', `file:${log}`, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i1"}\n' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/held by pid \d+ on elsewhere\.example/);
  });

  test('an unreadable takeover guard (a takeover that died half-way) is an error naming it, not an endless loop', async () => {
    const log = newLog();
    writeFileSync(`${log}.lock`, `${JSON.stringify({ pid: deadPid(), host: hostname(), since: '2026-01-01T00:00:00.000Z' })}\n`);
    writeFileSync(`${log}.lock.takeover`, '');
    const r = await cli(['--store', `file:${log}`, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i1"}\n' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/log\.jsonl\.lock\.takeover is unreadable; remove it/);
  });

  test('a writer killed while it writes its lock file leaves no lock that blocks the next one', async () => {
    const log = newLog();
    // The first opener's lock write never completes (it is "killed" there); the file system is real.
    let stuck = false;
    const hanging = lockWrites(() => {
      stuck = true;
      return new Promise<never>(() => undefined);
    });
    void openFileStore(log, { fs: hanging, warn: () => undefined });
    await until(() => stuck, 'the lock write');
    const warnings: string[] = [];
    const store = await openFileStore(log, { warn: (m) => void warnings.push(m) });
    await store.append('host-local', [{ id: 'e1', type: 'T', data: {}, meta: { at: new Date().toISOString(), actor: { uid: 0 }, host: 'local' } }]);
    await store.close();
  });

  test('ENOSPC while writing the lock fails the open with the errno and leaves nothing behind', async () => {
    const log = newLog();
    const full = lockWrites(async () => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    const error = await openFileStore(log, { fs: full, warn: () => undefined }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).message).toMatch(/ENOSPC/);
    expect(readdirSync(join(log, '..')).filter((f) => f.includes('.lock'))).toEqual([]);
    const store = await openFileStore(log, { warn: () => undefined });
    await store.close();
  });
});

describe('one manager, many concurrent callers (an HTTP server)', () => {
  test('concurrent exec calls are serialised: all decided, none fails with a self-inflicted ECONFLICT; replay equals live', async () => {
    for (const open of [async () => createMemoryStore(), async () => openFileStore(newLog(), { warn: () => undefined })]) {
      const store = await open();
      const m = createManager({ store });
      await m.load();
      const results = await Promise.all([
        ...Array.from({ length: 30 }, (_, i) => m.exec({ type: 'ctx.open', ctx: `c${i % 10}`, id: `k${i}` })),
        m.execMany([{ type: 'iommu.add', iommu: 'i0' }, { type: 'iommu.add', iommu: 'i0' }]),
        m.import([{ type: 'ContextOpened', data: { ctx: 'observed', kind: 'iommufd', uid: 5 }, meta: { at: '2026-11-21T10:00:00Z', actor: { uid: 0 }, host: 'local' } }]),
      ]);
      const execs = results.slice(0, 30) as { ok: boolean; status?: string }[];
      expect(execs.filter((r) => r.ok)).toHaveLength(10);
      expect(execs.filter((r) => !r.ok).map((r) => r.status)).toEqual(Array(20).fill('EEXIST'));
      const log = [];
      for await (const e of store.read('host-local')) log.push(e);
      expect(log).toHaveLength(30 + 2 + 1);
      expect(fingerprint(evolveAll(initialState(), log))).toBe(fingerprint(m.state));
      await store.close();
    }
  });
});

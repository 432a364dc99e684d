/**
 * Injected I/O faults (issue 8): EIO and ENOSPC on the log's write (whole or after a partial write)
 * and on its fdatasync, through the file store's fs seam.
 *
 *  - At the CLI (`exec`, `import`, in-process with the seam patched in): exit 2, one line naming
 *    the errno, no stack trace, the log byte-identical, the lock released, the next run fine.
 *  - Through the manager (fast-check): random commands with a random fault schedule; a failed
 *    command rejects with the errno and leaves the file byte-identical and the manager's state
 *    where it was; what succeeded is exactly what the log holds, and replay equals the live state.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { evolveAll, initialState } from '../../domain/index.js';
import { createManager } from '../../src/manager.js';
import { openFileStore } from '../../src/store/file.js';
import type { StoreFileHandle, StoreFs } from '../../src/store/file-fs.js';
import { realFs } from '../../src/store/file-fs.js';
import { StoreError, type RecordedEvent } from '../../src/store/types.js';
import { cli, tempDir } from '../cli/run.js';
import { checkInvariants } from '../domain/invariants.js';
import { SETUP, envInt, fingerprint, prng, randomCommand, report } from './kit.js';

type Where = 'write' | 'partial-write' | 'fsync';
interface Fault {
  code: 'EIO' | 'ENOSPC';
  where: Where;
}

const injected = { cli: 0, library: 0 };

/** Wraps a handle of the log so that the armed fault (if any) fires on its next write or fdatasync. */
const faulty = (handle: StoreFileHandle, armed: { fault: Fault | null }, syncForReal: boolean): StoreFileHandle => {
  const fail = (code: string, syscall: string): Error => Object.assign(new Error(`${code}: injected fault, ${syscall}`), { code, syscall });
  return {
    read: (b, o, l, p) => handle.read(b, o, l, p),
    truncate: (l) => handle.truncate(l),
    stat: () => handle.stat(),
    close: () => handle.close(),
    write: async (buffer, offset, length) => {
      const f = armed.fault;
      if (!f || f.where === 'fsync') return handle.write(buffer, offset, length);
      armed.fault = null;
      if (f.where === 'partial-write') await handle.write(buffer, offset, Math.max(1, Math.floor(length / 3)));
      throw fail(f.code, 'write');
    },
    datasync: async () => {
      const f = armed.fault;
      if (f?.where === 'fsync') {
        armed.fault = null;
        throw fail(f.code, 'fdatasync');
      }
      if (syncForReal) await handle.datasync();
    },
  };
};

/** The real `open`, kept before a test patches `realFs.open` (which the CLI's stores use). */
const realOpen = realFs.open;

const faultyFs = (armed: { fault: Fault | null }, syncForReal = true): StoreFs => ({
  ...realFs,
  open: async (path, flags) => {
    const h = await realOpen(path, flags);
    return path.endsWith('.jsonl') ? faulty(h, armed, syncForReal) : h;
  },
});

const ALL: readonly Fault[] = (['EIO', 'ENOSPC'] as const).flatMap((code) => (['write', 'partial-write', 'fsync'] as const).map((where) => ({ code, where })));

describe('injected write errors at the CLI', () => {
  afterEach(() => {
    realFs.open = realOpen;
  });

  test.each(ALL.flatMap((f) => [['exec', f] as const, ['import', f] as const]))('%s with %o: exit 2, one line naming the errno, log byte-identical', async (verb, fault) => {
    const dir = tempDir();
    const log = join(dir, 'log.jsonl');
    const store = `file:${log}`;
    expect((await cli(['--store', store, 'exec', '-'], { stdin: `${SETUP.map((c) => JSON.stringify(c)).join('\n')}\n` })).code).toBe(0);
    const before = readFileSync(log);
    const armed = { fault: { ...fault } as Fault | null };
    realFs.open = faultyFs(armed).open;
    const input =
      verb === 'exec'
        ? '{"type":"device.add","device":"0000:00:1c.0","parent":"pci0000:00","iommu":"i0","pci":{"kind":"root-port"}}\n{"type":"ctx.open","ctx":"c9"}\n'
        : '{"type":"ContextOpened","data":{"ctx":"c9","kind":"iommufd","uid":0},"meta":{"at":"2026-11-21T10:00:00Z"}}\n';
    const r = await cli(['--store', store, verb, '-'], { stdin: input });
    realFs.open = realOpen;
    expect(armed.fault).toBeNull(); // it fired
    injected.cli++;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^isogroup: append to host-local failed: cannot (write|fsync) .*log\\.jsonl: ${fault.code}: injected fault.*nothing was appended\\n$`));
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readFileSync(log).equals(before)).toBe(true);
    expect(existsSync(`${log}.lock`)).toBe(false);
    const again = await cli(['--store', store, verb, '-'], { stdin: input });
    expect(again.code).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('injected write errors through the manager (fast-check fault schedules)', () => {
  const RUNS = envInt('ISOGROUP_FAULT_RUNS', 150);
  test(`${RUNS} random workloads with random EIO/ENOSPC on write, partial write and fdatasync: the log holds exactly what succeeded`, async () => {
    const dir = tempDir();
    let run = 0;
    const figures = { runs: 0, commands: 0, faults: 0, failedCommands: 0, succeeded: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.array(fc.option(fc.constantFrom(...ALL), { freq: 3 }), { minLength: 5, maxLength: 25 }),
        async (seed, schedule) => {
          const log = join(dir, `run-${++run}.jsonl`);
          const armed: { fault: Fault | null } = { fault: null };
          // fdatasync is skipped unless it is to fail (speed); the rollback logic is what is under test.
          const store = await openFileStore(log, { fs: faultyFs(armed, false), warn: () => undefined });
          try {
            const m = createManager({ store });
            await m.load();
            const rnd = prng(seed);
            const cmds = [...SETUP.map((c) => ({ ...c })), ...schedule.map(() => randomCommand(rnd))];
            const faults = [...SETUP.map(() => null), ...schedule];
            const succeeded: string[] = [];
            for (const [i, cmd] of cmds.entries()) {
              cmd.id = `c${i}`;
              const bytes = existsSync(log) ? readFileSync(log) : Buffer.alloc(0);
              const posBefore = m.state.pos;
              const fault = faults[i] ?? null;
              armed.fault = fault ? { ...fault } : null;
              figures.commands++;
              try {
                const r = await m.exec(cmd);
                // A command that appends nothing (a no-op) never reaches the disk: the fault stays armed.
                if (armed.fault && r.pos.length > 0) throw new Error(`the ${fault!.where} fault did not fire`);
                if (r.pos.length > 0) succeeded.push(cmd.id as string);
                figures.succeeded++;
              } catch (error) {
                if (!fault) throw error;
                figures.faults++;
                figures.failedCommands++;
                expect(error).toBeInstanceOf(StoreError);
                expect((error as StoreError).code).toBe(fault.code);
                expect((error as Error).message).toMatch(/nothing was appended/);
                expect(readFileSync(log).equals(bytes)).toBe(true);
                expect(m.state.pos).toBe(posBefore);
              }
              armed.fault = null;
            }
            const logged: RecordedEvent[] = [];
            for await (const e of store.read('host-local')) logged.push(e);
            expect([...new Set(logged.map((e) => e.meta.command as string))]).toEqual(succeeded);
            await store.close();
            // A fresh open of the file (real fs) replays to the live state.
            const again = await openFileStore(log, { readOnly: true });
            const fresh = createManager({ store: again });
            await fresh.load();
            expect(fingerprint(fresh.state)).toBe(fingerprint(m.state));
            expect(fingerprint(evolveAll(initialState(), logged))).toBe(fingerprint(m.state));
            checkInvariants(m.state);
            await again.close();
          } finally {
            await store.close();
            rmSync(log, { force: true });
          }
          figures.runs++;
        },
      ),
      { numRuns: RUNS },
    );
    injected.library = figures.faults;
    expect(figures.faults).toBeGreaterThan(RUNS);
    report('faults', { ...figures, cliFaults: injected.cli });
    rmSync(dir, { recursive: true, force: true });
  }, 600_000);
});

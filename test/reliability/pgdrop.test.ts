/**
 * PostgreSQL connections dropped in the middle of a fleet's writes (issue 22). Against the real
 * server (127.0.0.1:5432, database test; the suite skips when it is not there), in a schema of its
 * own, with an application_name of its own so that only this test's connections are touched:
 *
 *  - two writer processes (pg-writer.ts) push commands to two hosts while a subscriber process
 *    (pg-follow.ts) follows every stream, and the test keeps terminating all of their backends
 *    (`pg_terminate_backend`, every 100-500 ms; every other round spares backends under a second old). Every acknowledged command is in the log exactly
 *    once at the positions its exec printed, positions have no gap, nothing is invented; the
 *    subscriber got every event exactly once, in the global order; writers and subscriber
 *    reconnected by themselves and said so in one line per outage (no stack trace, no other noise).
 *  - an append whose connection drops just before or just after its COMMIT reached the server
 *    (simulated on the client, so it happens on cue) is retried with the same event ids and lands
 *    exactly once; the reconnect line says which it was, looked up, not guessed.
 *
 * Needs dist/ (`npm test` builds first). ISOGROUP_PG_COMMANDS=N commands per writer (default 150;
 * the long mode 5,000).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { openPostgresStore } from '../../src/store/postgres.js';
import type { RecordedEvent } from '../../src/store/types.js';
import { SETUP, envInt, report } from './kit.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SERVER = process.env.ISOGROUP_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const COMMANDS = envInt('ISOGROUP_PG_COMMANDS', 150);
const schema = `isogroup_reliab_${process.pid}_${randomUUID().slice(0, 8)}`;
const app = `isogroup-drop-${schema}`.slice(0, 63);
const url = `${SERVER}?schema=${schema}&application_name=${app}`;

const reachable = await (async () => {
  const c = new pg.Client({ connectionString: SERVER, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
})();
const maybe = reachable ? describe : describe.skip;

interface Child {
  readonly proc: ChildProcess;
  readonly lines: unknown[];
  stderr: string;
  readonly exited: Promise<number | null>;
  /** Resolves once a stdout line satisfies `pred`. */
  until(pred: (line: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<void>;
}

const start = (script: string, args: string[]): Child => {
  const proc = spawn(process.execPath, [join(ROOT, 'dist/test/reliability', script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const waiters = new Set<() => void>();
  children.add(proc);
  const child: Child = {
    proc,
    lines: [],
    stderr: '',
    exited: new Promise((resolve) => proc.on('exit', (code) => resolve(code))),
    until: (pred, what, timeoutMs = 120_000) =>
      new Promise((resolve, reject) => {
        const check = (): boolean => {
          if (child.lines.some((l) => pred(l as Record<string, unknown>))) {
            waiters.delete(check as () => void);
            clearTimeout(timer);
            resolve();
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => {
          waiters.delete(check as () => void);
          reject(new Error(`${script}: no ${what} within ${timeoutMs} ms; stderr: ${child.stderr.slice(-2000)}`));
        }, timeoutMs);
        if (!check()) waiters.add(check as () => void);
      }),
  };
  let buf = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const p of parts) if (p !== '') child.lines.push(JSON.parse(p));
    for (const w of [...waiters]) w();
  });
  proc.stderr!.on('data', (chunk: Buffer) => {
    child.stderr += chunk.toString('utf8');
  });
  return child;
};

const children = new Set<ChildProcess>();
const admin = new pg.Client({ connectionString: SERVER, application_name: 'isogroup-drop-killer' });

beforeAll(async () => {
  if (reachable) await admin.connect();
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (!reachable) return;
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

const RECONNECT_LINE = /^isogroup: warning: PostgreSQL connection lost \(.*\); (appends|reads|subscription) reconnected after \d+ ms and \d+ failed tr(y|ies)(; the interrupted append to \S+ was (not )?committed \(looked up by its event ids\))?$/;

maybe('PostgreSQL: connections dropped during a fleet\'s writes', () => {
  test(`two writers × ${COMMANDS} commands and a subscriber, their backends terminated again and again`, async () => {
    // The schema exists before the children race to create it.
    await (await openPostgresStore(url)).close();
    const follower = start('pg-follow.js', [url]);
    await follower.until((l) => l.ready === true, 'ready');
    const writers = ['fleet-a', 'fleet-b'].map((host, i) => start('pg-writer.js', [url, host, String(COMMANDS), String(2200 + i)]));
    let terminated = 0;
    let rounds = 0;
    let writing = true;
    const allDone = Promise.all(writers.map((w) => w.exited)).finally(() => {
      writing = false;
    });
    while (writing) {
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 400));
      // Every other round spares backends younger than a second: a reconnect gets to do some work
      // before it is cut again (on a loaded machine a fresh connection can take longer than the
      // 100-500 ms between rounds, and killing every one of them is an outage without end, not a
      // flaky network); the rounds between cut everything, so a quick writer is cut too.
      const { rows } = await admin.query(
        "SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() AND (NOT $2 OR backend_start < clock_timestamp() - interval '1 second')) t",
        [app, rounds % 2 === 1],
      );
      terminated += rows[0].n as number;
      rounds += 1;
    }
    const codes = await allDone;
    for (const w of writers) if (w.proc.exitCode !== 0) throw new Error(`a writer exited ${w.proc.exitCode}: ${w.stderr.slice(-3000)} ${JSON.stringify(w.lines.at(-1))}`);
    expect(codes).toEqual([0, 0]);

    // What the log holds, read by a fresh store.
    const store = await openPostgresStore(url);
    const logged: RecordedEvent[] = [];
    for await (const e of store.readAll()) logged.push(e);
    await store.close();

    // The subscriber catches up with all of it.
    await follower.until(() => follower.lines.length - 1 >= logged.length, `all ${logged.length} events`);
    follower.proc.kill('SIGTERM');
    await follower.exited;

    const acked = new Map<string, number[]>();
    for (const w of writers) {
      for (const l of w.lines as { id?: string; pos?: number[]; error?: string }[]) {
        expect(l.error).toBeUndefined();
        if (l.id !== undefined) acked.set(l.id, l.pos!);
      }
    }
    expect(acked.size).toBe(2 * (COMMANDS + SETUP.length));
    const byCommand = new Map<string, { stream: string; pos: number[] }>();
    const streams = new Map<string, number>();
    for (const e of logged) {
      const last = streams.get(e.stream!) ?? 0;
      expect({ stream: e.stream, pos: e.pos }).toEqual({ stream: e.stream, pos: last + 1 }); // no gap, no repeat
      streams.set(e.stream!, e.pos);
      const k = e.meta.command!;
      expect(acked.has(k)).toBe(true); // nothing invented
      const entry = byCommand.get(k) ?? { stream: e.stream!, pos: [] };
      entry.pos.push(e.pos);
      byCommand.set(k, entry);
    }
    for (const [id, pos] of acked) expect({ id, pos: byCommand.get(id)?.pos ?? [] }).toEqual({ id, pos });
    expect(new Set(logged.map((e) => e.id)).size).toBe(logged.length);

    // The subscriber: every event once, in the global order.
    const got = (follower.lines as { s?: string; p?: number; c?: string; i?: string }[]).filter((l) => l.i !== undefined);
    expect(got.map((l) => l.i)).toEqual(logged.map((e) => e.id));
    for (let i = 1; i < got.length; i++) expect(got[i]!.c! > got[i - 1]!.c!).toBe(true);

    // Reconnects said in one line each, and nothing else on stderr.
    const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
    for (const c of [...writers, follower]) for (const l of lines(c.stderr)) expect(l).toMatch(RECONNECT_LINE);
    const writerLines = writers.flatMap((w) => lines(w.stderr));
    const followerLines = lines(follower.stderr);
    expect(terminated).toBeGreaterThan(0);
    expect(writers.every((w) => lines(w.stderr).length > 0)).toBe(true);
    expect(followerLines.length).toBeGreaterThan(0);
    report('postgres drops', {
      'writer processes × commands each': `2 × ${COMMANDS + SETUP.length}`,
      'backends terminated (pg_terminate_backend), in rounds': `${terminated} in ${rounds}`,
      'commands acknowledged, all found exactly once at their positions': acked.size,
      'events in the log / delivered to the subscriber once, in order': `${logged.length} / ${got.length}`,
      'reconnect lines: writers / subscriber': `${writerLines.length} / ${followerLines.length}`,
      'interrupted appends resolved by event ids: committed / not committed': `${writerLines.filter((l) => / was committed/.test(l)).length} / ${writerLines.filter((l) => /was not committed/.test(l)).length}`,
    });
  }, 600_000);

  test('an append cut off just before or just after its COMMIT lands exactly once, resolved by its event ids', async () => {
    const warnings: string[] = [];
    const store = await openPostgresStore(url, { warn: (m) => warnings.push(m) });
    const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => Promise<unknown> };
    const original = proto.query;
    let armed: 'before' | 'after' | null = null;
    proto.query = function (this: { connection: { stream: { destroy(): void } } }, ...args: unknown[]) {
      if (armed !== null && args[0] === 'COMMIT') {
        const when = armed;
        armed = null;
        const drop = (): Error => {
          this.connection.stream.destroy();
          return new Error(`Connection terminated unexpectedly (simulated ${when} COMMIT)`);
        };
        if (when === 'before') return Promise.reject(drop());
        return (original.apply(this, args) as Promise<unknown>).then(() => {
          throw drop();
        });
      }
      return original.apply(this, args);
    } as typeof original;
    try {
      const event = (n: number) => ({ id: randomUUID(), type: 'Noted', data: { n }, meta: { at: new Date().toISOString(), actor: { uid: 0 }, host: 'cut' } });
      const e1 = event(1);
      armed = 'before';
      const r1 = await store.append('host-cut', [e1], { expectedVersion: 'no-stream' });
      expect(r1.events.map((e) => e.pos)).toEqual([1]);
      expect(warnings.at(-1)).toMatch(/appends reconnected .*the interrupted append to host-cut was not committed \(looked up by its event ids\)$/);
      const e2 = event(2);
      armed = 'after';
      const r2 = await store.append('host-cut', [e2], { expectedVersion: 1 });
      expect(r2.events.map((e) => e.pos)).toEqual([2]);
      expect(warnings.at(-1)).toMatch(/appends reconnected .*the interrupted append to host-cut was committed \(looked up by its event ids\)$/);
      expect(warnings).toHaveLength(2);
      const all: RecordedEvent[] = [];
      for await (const e of store.read('host-cut')) all.push(e);
      expect(all.map((e) => [e.pos, e.id])).toEqual([
        [1, e1.id],
        [2, e2.id],
      ]);
    } finally {
      proto.query = original;
      await store.close();
    }
  });
});

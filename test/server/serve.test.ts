/**
 * `isogroup serve` in-process: prints the URL, serves the store read-only (no file lock) unless
 * --token, releases the lock when it stops, and reads --host after `serve` as the bind address
 * (SPEC §10) while --host before it names the log host.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CommanderError, type Command } from 'commander';
import { registerServe, splitHostFlags } from '../../src/cli/commands/serve.js';
import { createContext, type GlobalOptions } from '../../src/cli/context.js';
import { CliError, type Io } from '../../src/cli/io.js';
import { buildProgram, run, type App } from '../../src/cli/program.js';
import { get, http } from './helpers.js';

interface Captured {
  readonly io: Io;
  readonly out: () => string;
  readonly err: () => string;
}

const capture = (): Captured => {
  let out = '';
  let err = '';
  const io: Io = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    stdin: Readable.from([]),
    env: {},
    cwd: process.cwd(),
  };
  return { io, out: () => out, err: () => err };
};

/**
 * Runs `isogroup …` with the serve command registered (by program.ts once it is wired, else
 * here with the same action wrapper) and a stop promise instead of a signal.
 */
const serve = (argv: string[], stop: Promise<unknown>): { io: Captured; code: Promise<number> } => {
  const io = capture();
  const exit = { code: 0 };
  const code = buildProgram(io.io, exit).then((program) => {
    const existing = program.commands.find((c) => c.name() === 'serve');
    if (existing) (program as unknown as { commands: Command[] }).commands.splice(program.commands.indexOf(existing), 1);
    const app: App = {
      io: io.io,
      action:
        (fn) =>
        async (...args) => {
          const cmd = args[args.length - 1] as Command;
          let ctx = null;
          try {
            ctx = createContext(io.io, cmd.optsWithGlobals() as GlobalOptions);
            const code = await fn(ctx, ...args);
            exit.code = typeof code === 'number' ? code : 0;
          } finally {
            await ctx?.close();
          }
        },
    };
    registerServe(program, app, { stop });
    return program.parseAsync(argv, { from: 'user' });
  });
  const ended = code.then(
    () => exit.code,
    (err: unknown) => {
      if (err instanceof CliError) {
        io.io.stderr.write(`isogroup: ${err.message}\n`);
        return err.exitCode;
      }
      if (err instanceof CommanderError) return 2;
      throw err;
    },
  );
  return { io, code: ended };
};

/** Waits for the URL line; fails with the output if the command ended first. */
const urlOf = async (s: { io: Captured; code: Promise<number> }): Promise<string> => {
  let ended = false;
  void s.code.then(() => (ended = true));
  for (let i = 0; i < 400; i++) {
    const m = /http:\/\/[^\s/]+\//.exec(s.io.out());
    if (m) return m[0];
    if (ended) throw new Error(`serve ended: ${s.io.err()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no URL printed: ${s.io.out()} ${s.io.err()}`);
};

const stopper = (): { stop: Promise<void>; fire: () => void } => {
  let fire!: () => void;
  const stop = new Promise<void>((r) => (fire = r));
  return { stop, fire };
};

let dir: string;
let storeUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'isogroup-serve-'));
  storeUrl = `file:${join(dir, 'log.jsonl')}`;
  const io = capture();
  expect(await run(['--store', storeUrl, 'demo', '--quiet'], io.io)).toBe(0);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('isogroup serve', () => {
  test('prints the URL, serves read-only without holding the lock, and stops cleanly', async () => {
    const s0 = stopper();
    const s = serve(['--store', storeUrl, 'serve', '--port', '0'], s0.stop);
    const url = await urlOf(s);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(s.io.out()).toMatch(/host local, 36 entries, read-only/);
    expect((await get(url, '/api/state')).json).toMatchObject({ pos: 36, writable: false });
    // No lock taken: another writer can append while the dashboard is up, and the page follows.
    const other = capture();
    expect(await run(['--store', storeUrl, '--host', 'second', 'demo', '--quiet'], other.io)).toBe(0);
    let hosts: string[] = [];
    for (let i = 0; i < 100 && !hosts.includes('second'); i++) {
      hosts = (await get(url, '/api/hosts')).json.hosts.map((h: { host: string }) => h.host);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(hosts).toEqual(['local', 'second']);
    expect((await http(url, 'POST', '/api/commands', { headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(403);
    s0.fire();
    expect(await s.code).toBe(0);
    expect(s.io.err()).toMatch(/closing the dashboard/);
    await expect(get(url, '/api/hosts')).rejects.toThrow();
  });

  test('with --token it writes (holding the lock) and releases the lock when it stops', async () => {
    const s0 = stopper();
    const s = serve(['--store', storeUrl, 'serve', '--port', '0', '--token', 'long-enough-token'], s0.stop);
    const url = await urlOf(s);
    expect(s.io.out()).toMatch(/commands enabled with the token/);
    const r = await http(url, 'POST', '/api/commands', {
      headers: { authorization: 'Bearer long-enough-token', 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'ctx.open', ctx: 'from-http', kind: 'iommufd' }),
    });
    expect(r.json).toMatchObject({ ok: true, pos: 37 });
    const blocked = capture();
    expect(await run(['--store', storeUrl, '--host', 'third', 'demo', '--quiet'], blocked.io)).toBe(2);
    expect(blocked.err()).toMatch(/lock/i);
    s0.fire();
    expect(await s.code).toBe(0);
    const after = capture();
    expect(await run(['--store', storeUrl, '--host', 'third', 'demo', '--quiet'], after.io)).toBe(0);
  });

  test('--host after serve is the bind address; --host before it picks the log host shown first', async () => {
    const a = stopper();
    const s1 = serve(['--store', storeUrl, 'serve', '--host', '127.0.0.1', '--port', '0'], a.stop);
    const url1 = await urlOf(s1);
    expect(url1).toMatch(/^http:\/\/127\.0\.0\.1:/);
    expect((await get(url1, '/api/hosts')).json.default).toBe('local');
    a.fire();
    expect(await s1.code).toBe(0);

    const b = stopper();
    const s2 = serve(['--store', storeUrl, '--host', 'second', 'serve', '--host=127.0.0.1', '--port', '0'], b.stop);
    const url2 = await urlOf(s2);
    expect((await get(url2, '/api/hosts')).json.default).toBe('second');
    expect((await get(url2, '/api/state')).json.host).toBe('second');
    b.fire();
    expect(await s2.code).toBe(0);

    const c = stopper();
    const s3 = serve(['--store', storeUrl, '--host', 'second', 'serve', '--port', '0'], c.stop);
    expect((await get(await urlOf(s3), '/api/state')).json.host).toBe('second');
    c.fire();
    expect(await s3.code).toBe(0);
  });

  test('refuses a non-loopback address without --bind-any, bad ports and disagreeing flags', async () => {
    const never = new Promise<void>(() => undefined);
    const cases: [string[], RegExp][] = [
      [['serve', '--bind', '0.0.0.0', '--port', '0'], /refusing to listen on 0\.0\.0\.0.*--bind-any/],
      [['serve', '--host', '0.0.0.0', '--port', '0'], /refusing to listen on 0\.0\.0\.0/],
      [['serve', '--port', '99999'], /--port: expected 0 to 65535/],
      [['serve', '--port', 'http'], /--port/],
      [['serve', '--host', '127.0.0.1', '--bind', '127.0.0.2', '--port', '0'], /disagree/],
      [['serve', '--token', 'short', '--port', '0'], /at least 8 characters/],
    ];
    for (const [argv, msg] of cases) {
      const s = serve(['--store', storeUrl, ...argv], never);
      expect({ argv, code: await s.code }).toEqual({ argv, code: 2 });
      expect(s.io.err()).toMatch(msg);
    }
  });
});

describe('splitHostFlags', () => {
  test('separates the log host (before the subcommand) from the bind address (after it)', () => {
    expect(splitHostFlags(['serve'])).toEqual({ before: undefined, after: undefined });
    expect(splitHostFlags(['--host', 'lab', 'serve'])).toEqual({ before: 'lab', after: undefined });
    expect(splitHostFlags(['serve', '--host', '127.0.0.1'])).toEqual({ before: undefined, after: '127.0.0.1' });
    expect(splitHostFlags(['--store', 'memory:', '--host=lab', '--json', 'serve', '--port', '0', '--host=::1'])).toEqual({ before: 'lab', after: '::1' });
    // A store path that happens to read "serve" is a value, not the subcommand.
    expect(splitHostFlags(['--store', 'serve', '--host', 'x', 'serve', '--host', 'y'])).toEqual({ before: 'x', after: 'y' });
  });
});

describe('isogroup serve --seal-every', () => {
  test('seals at start and then periodically into --seal-dir; the seal panel says the log still holds it', async () => {
    const keyFile = join(dir, 'seal.pem');
    const io = capture();
    expect(await run(['seal', '--new-key', keyFile], io.io)).toBe(0);
    const seals = join(dir, 'seals');
    const s0 = stopper();
    const s = serve(['--store', storeUrl, 'serve', '--port', '0', '--seal-every', '200ms', '--seal-key', keyFile, '--seal-dir', seals], s0.stop);
    const url = await urlOf(s);
    for (let i = 0; i < 100 && !s.io.out().includes('sealing every'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.io.out()).toContain(`sealing every 200ms into ${seals}`);
    const first = readdirSync(seals).filter((f) => f.startsWith('local-'));
    expect(first).toHaveLength(1);
    expect((await get(url, '/api/seal?host=local')).json).toMatchObject({ host: 'local', verifies: true, trust: 'key', sealing: { everyMs: 200 }, seal: { pos: Number(/^local-(\d+)-/.exec(first[0]!)![1]) } });
    // Another writer appends: the next period seals the new position.
    const other = capture();
    expect(await run(['--store', storeUrl, '--host', 'sealed', 'demo', '--quiet'], other.io)).toBe(0);
    for (let i = 0; i < 100 && !readdirSync(seals).some((f) => f.startsWith('sealed-36-')); i++) await new Promise((r) => setTimeout(r, 25));
    expect(readdirSync(seals).filter((f) => f.startsWith('sealed-'))).toEqual([expect.stringMatching(/^sealed-36-/)]);
    s0.fire();
    expect(await s.code).toBe(0);
  });

  test('a bad period or a missing key: a one-line error before anything listens', async () => {
    const never = new Promise<void>(() => undefined);
    const cases: [string[], RegExp][] = [
      [['serve', '--port', '0', '--seal-every', '5x'], /--seal-every: expected a period like 30s, 10m or 1h/],
      [['serve', '--port', '0', '--seal-every', '1m', '--seal-key', join(dir, 'nope.pem')], /cannot read the seal key .*nope\.pem.*isogroup seal --new-key FILE/],
    ];
    for (const [argv, msg] of cases) {
      const s = serve(['--store', storeUrl, ...argv], never);
      expect({ argv, code: await s.code }).toEqual({ argv, code: 2 });
      expect(s.io.err()).toMatch(msg);
      expect(s.io.err().trim().split('\n')).toHaveLength(1);
    }
  });
});

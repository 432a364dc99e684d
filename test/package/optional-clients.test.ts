/**
 * The server clients are optional peer dependencies. A consumer without them (a test suite on the
 * in-memory host) loads both entry points and runs the CLI on other stores; opening a server store
 * without its client prints one line naming the package to install, and exits non-zero.
 *
 * The built package is copied beside a node_modules that holds everything the repository installs
 * except `pg` and `@kurrent/*`, so Node's own resolution finds them missing, as in such a consumer.
 * The CLI runs as the package's bin (the bundle, which leaves both clients outside) and as the
 * entry tsc emits.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadOptional, missingPackageMessage } from '../../src/store/optional.js';
import { StoreError } from '../../src/store/types.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const CLIENTS = new Set(['pg', '@kurrent']);

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'isogroup-noclients-'));
  for (const part of ['cli', 'domain', 'projections', 'src']) cpSync(join(ROOT, 'dist', part), join(dir, 'dist', part), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'isogroup', type: 'module' }));
  mkdirSync(join(dir, 'node_modules'));
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (CLIENTS.has(name) || name.startsWith('.')) continue;
    symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name));
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The package's bin (the bundle) and the entry tsc emits. */
const ENTRIES = ['dist/cli/isogroup.js', 'dist/src/cli/main.js'];

const isogroup = (...args: string[]) => isogroupVia(ENTRIES[0]!, ...args);
const isogroupVia = (entry: string, ...args: string[]) => {
  const r = spawnSync(process.execPath, [join(dir, entry), ...args], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe('without the optional server clients', () => {
  test('the library and the test kit load, and the CLI works on the other stores', () => {
    const script = `await import(${JSON.stringify(pathToFileURL(join(dir, 'dist/src/testkit/index.js')).href)});
await import(${JSON.stringify(pathToFileURL(join(dir, 'dist/src/index.js')).href)});
console.log('loaded');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('loaded\n');
    expect(isogroup('--store', `file:${join(dir, 'log.jsonl')}`, 'demo').code).toBe(0);
    expect(isogroup('--store', `file:${join(dir, 'log.jsonl')}`, 'groups').code).toBe(0);
  });

  test.each(ENTRIES)('opening a kurrentdb:// store prints one line naming the package, and fails (%s)', (entry) => {
    const r = isogroupVia(entry, '--store', 'kurrentdb://localhost:2113?tls=false', 'groups');
    expect(r.stderr).toBe('isogroup: kurrentdb:// needs the package @kurrent/kurrentdb-client: npm install @kurrent/kurrentdb-client\n');
    expect(r.stdout).toBe('');
    expect(r.code).toBe(2);
  });

  test.each(ENTRIES)('opening a postgres:// store prints one line naming the package, and fails (%s)', (entry) => {
    const r = isogroupVia(entry, '--store', 'postgres://postgres@127.0.0.1:5432/test', 'groups');
    expect(r.stderr).toBe('isogroup: postgres:// needs the package pg: npm install pg\n');
    expect(r.code).toBe(2);
  });
});

describe('type declarations', () => {
  /** Every module a declaration file reaches, following relative imports and re-exports. */
  const reached = (entry: string): { files: Set<string>; packages: Set<string> } => {
    const files = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string): void => {
      if (files.has(file)) return;
      files.add(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*'([^']+)'/g)) {
        if (spec!.startsWith('.')) visit(join(dirname(file), spec!.replace(/\.js$/, '.d.ts')));
        else packages.add(spec!);
      }
    };
    visit(join(ROOT, entry));
    return { files, packages };
  };

  test.each(['dist/src/index.d.ts', 'dist/src/testkit/index.d.ts'])('%s does not reach the optional clients', (entry) => {
    const { files, packages } = reached(entry);
    expect(files.size).toBeGreaterThan(10);
    expect([...packages].filter((p) => p === 'pg' || p.startsWith('@kurrent/'))).toEqual([]);
  });
});

describe('loadOptional', () => {
  const notFound = (name: string) => async () => {
    throw Object.assign(new Error(`Cannot find package '${name}' imported from /app/dist/src/store/x.js`), { code: 'ERR_MODULE_NOT_FOUND' });
  };

  test('a missing package becomes a store error naming it', async () => {
    const err = await loadOptional('pg', 'postgres://', notFound('pg')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).message).toBe(missingPackageMessage('postgres://', 'pg'));
    expect((err as StoreError).message).toBe('postgres:// needs the package pg: npm install pg');
  });

  test("a package that is there but misses one of its own dependencies keeps Node's error", async () => {
    const err = await loadOptional('pg', 'postgres://', notFound('pg-pool')).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(StoreError);
    expect((err as Error).message).toContain("'pg-pool'");
  });

  test('an installed package is returned as imported', async () => {
    await expect(loadOptional('x', 'x://', async () => ({ ok: 1 }))).resolves.toEqual({ ok: 1 });
  });
});

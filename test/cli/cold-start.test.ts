/**
 * A one-shot query starts cold: the process loads the command it runs and what that command uses,
 * nothing else. `can-dma` loads no schema library (TypeBox: replay and queries never validate), not
 * rxjs's whole index, no server, no ingest, no PostgreSQL or KurrentDB client. Checked on the
 * built CLI with hooks that record every module the process loads (a behaviour test: no timing),
 * both the modules tsc emits (dist/src/cli/main.js) and the bundle the package's bin runs
 * (dist/cli/isogroup.js, scripts/build-cli.mjs), whose chunks name each source module they hold.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { Command } from 'commander';
import { COMMAND_MODULES, commandWord, modulesFor } from '../../src/cli/registry.js';
import type { App } from '../../src/cli/app.js';
import { cli, tempDir } from './run.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const BUNDLE = join(ROOT, 'dist/cli/isogroup.js');

/** Runs the built CLI under a hook that records the URL of every module loaded; returns them and the exit code. */
const loaded = (argv: string[], cli = CLI): Promise<{ code: number | null; stdout: string; stderr: string; modules: string[] }> => {
  const dir = tempDir();
  const list = join(dir, 'modules.txt');
  writeFileSync(list, '');
  writeFileSync(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(${JSON.stringify(list)}, url + '\\n'); return next(url, context); }\n`);
  // ES modules through the loader hook; require() (TypeBox is required on first use) through Module._load.
  writeFileSync(
    join(dir, 'register.mjs'),
    `import Module, { register } from 'node:module';\nimport { appendFileSync } from 'node:fs';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n` +
      `const load = Module._load;\nModule._load = function (request, ...rest) { appendFileSync(${JSON.stringify(list)}, 'require:' + request + '\\n'); return load.call(this, request, ...rest); };\n`,
  );
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, cli, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => void (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => void (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      import('node:fs')
        .then(({ readFileSync }) => resolve({ code, stdout, stderr, modules: readFileSync(list, 'utf8').split('\n').filter(Boolean) }))
        .catch(reject);
    });
  });
};

const HEAVY = [/\/node_modules\/typebox\//, /^require:typebox/, /\/rxjs\/dist\/cjs\/index\.js$/, /\/src\/server\//, /\/src\/ingest\//, /\/node_modules\/pg/, /\/node_modules\/@kurrent\//, /\/store\/postgres/, /\/store\/kurrent/, /\/store\/archive/, /\/testkit\//, /\/cli\/commands\/(serve|follow|ingest|integrity|core|storm)\./];

describe('a cold query loads only what it uses', () => {
  test('can-dma on a file log: the verdict, without the schema library, the server, ingest or the database clients', async () => {
    const store = `file:${join(tempDir(), 'log.jsonl')}`;
    expect((await cli(['--store', store, 'demo'])).code).toBe(0);
    const r = await loaded(['--store', store, 'can-dma', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^(ALLOWED|DENIED|ON FAULT)/);
    expect(r.modules.some((u) => u.endsWith('/cli/commands/queries.js'))).toBe(true);
    expect(r.modules.filter((u) => HEAVY.some((h) => h.test(u)))).toEqual([]);
  });

  test('the hook sees the schema library when a command needs it (isogroup schema)', async () => {
    const r = await loaded(['schema']);
    expect(r.code).toBe(0);
    expect(r.modules).toContain('require:typebox');
  });
});

/** The source modules inside the bundle's files a run loaded: esbuild heads each one's code with a `// path` line. */
const bundledSources = (modules: readonly string[]): string[] =>
  modules
    .filter((u) => u.startsWith('file:') && u.includes('/dist/cli/'))
    .flatMap((u) => [...readFileSync(fileURLToPath(u), 'utf8').matchAll(/^\/\/ (\S+\.[cm]?[jt]s)$/gm)].map((m) => `/${m[1]!}`));

describe('the bundled CLI (the package bin) stays as lazy', () => {
  test('can-dma loads only bundle files, and none holds the schema library, the server, ingest or the database clients', async () => {
    const store = `file:${join(tempDir(), 'log.jsonl')}`;
    expect((await cli(['--store', store, 'demo'])).code).toBe(0);
    const r = await loaded(['--store', store, 'can-dma', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w'], BUNDLE);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^(ALLOWED|DENIED|ON FAULT)/);
    const files = r.modules.filter((u) => u.startsWith('file:'));
    expect(files.filter((u) => !u.includes('/dist/cli/'))).toEqual([]);
    const sources = bundledSources(r.modules);
    expect(sources).toContain('/src/cli/commands/queries.ts');
    expect(sources.some((s) => s.endsWith('/commander/lib/command.js'))).toBe(true);
    expect([...r.modules, ...sources].filter((u) => HEAVY.some((h) => h.test(u)))).toEqual([]);
  });

  test('the schema library stays outside the bundle, required from node_modules when a command needs it', async () => {
    const r = await loaded(['schema'], BUNDLE);
    expect(r.code).toBe(0);
    expect(r.modules).toContain('require:typebox');
    expect(JSON.parse(r.stdout)).toHaveProperty('$defs');
  });
});

describe('the command registry', () => {
  const app: App = { io: { stdout: { write: () => 0 }, stderr: { write: () => 0 }, stdin: process.stdin, env: {}, cwd: ROOT }, action: () => async () => undefined };

  test('names exactly the commands each module registers', async () => {
    for (const m of COMMAND_MODULES) {
      const program = new Command('isogroup');
      (await m.load())(program, app);
      expect(program.commands.map((c) => c.name())).toEqual(m.commands);
    }
  });

  test('the command word skips global options and their values; unknown words, help and completion load every module', () => {
    expect(commandWord(['--store', 'file:x', '--json', 'can-dma', '--device', 'd'])).toBe('can-dma');
    expect(commandWord(['--store=file:x', '--host', 'h', 'groups'])).toBe('groups');
    expect(commandWord(['--version'])).toBeUndefined();
    expect(modulesFor(['can-dma']).map((m) => m.commands[0])).toEqual(['can-dma']);
    for (const argv of [[], ['--help'], ['help', 'can-dma'], ['completion', 'bash'], ['can-dam']]) expect(modulesFor(argv)).toBe(COMMAND_MODULES);
    expect(modulesFor(['--version'])).toEqual([]);
    expect(modulesFor(['--version', '--help'])).toBe(COMMAND_MODULES);
  });

  test('isogroup --help still lists every command', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const name of COMMAND_MODULES.flatMap((m) => m.commands)) expect(r.stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
  });
});

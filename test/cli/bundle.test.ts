/**
 * The package's bin is the bundled CLI (dist/cli/isogroup.js, built by scripts/build-cli.mjs from the same
 * sources tsc emits to dist/src). Run as a user would, it answers exactly as the unbundled entry
 * (dist/src/cli/main.js) does — the README's worked example, each command on its own log — and its
 * `serve` finds the dashboard's page and the vendor modules it imports.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from '@jest/globals';
import { tempDir } from './run.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const UNBUNDLED = join(ROOT, 'dist/src/cli/main.js');
const BIN = join(ROOT, (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: { isogroup: string } }).bin.isogroup);
const FIXTURE = join(ROOT, 'test/fixtures/desktop-gpu-passthrough.jsonl');

const run = (cli: string, args: string[]) => {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe('the bin', () => {
  test('is the bundle', () => {
    expect(BIN).toBe(join(ROOT, 'dist/cli/isogroup.js'));
  });

  test('runs the worked example with the same output as the unbundled entry', () => {
    // Each writes its own log (entries carry the time they were written); then both read the bin's log.
    const logs = { bundled: join(tempDir(), 'log.jsonl'), unbundled: join(tempDir(), 'log.jsonl') };
    const exec = run(BIN, ['--store', `file:${logs.bundled}`, 'exec', FIXTURE]);
    expect(exec).toEqual(run(UNBUNDLED, ['--store', `file:${logs.unbundled}`, 'exec', FIXTURE]));
    expect(exec.stdout.split('\n')[20]).toContain('"status":"EPERM"');
    const store = ['--store', `file:${logs.bundled}`];
    const snapshot = run(BIN, [...store, 'snapshot']);
    expect(snapshot).toMatchObject({ code: 0, stderr: '' });
    const steps: string[][] = [
      ['groups'],
      ['--json', 'can-dma', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w'],
      ['explain', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w'],
      ['bisect', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w'],
      ['can-dma', '--device', '0000:0a:00.0', '--iova', '0x1000', '--access', 'w', '--at', '20'],
      ['can-dma', '--device', '0000:0a:00.9', '--iova', '0x1000', '--access', 'w'],
    ];
    for (const step of steps) expect({ step, ...run(BIN, [...store, ...step]) }).toEqual({ step, ...run(UNBUNDLED, [...store, ...step]) });
    const verdict = JSON.parse(run(BIN, [...store, '--json', 'can-dma', '--device', '0000:0a:00.1', '--iova', '0x1000', '--access', 'w']).stdout) as { allowed: boolean };
    expect(verdict.allowed).toBe(true);
  });

  test('--version, --help and an unknown command read as from the unbundled entry', () => {
    for (const args of [['--version'], ['--help'], ['can-dma', '--help'], ['can-dam']]) {
      const bundled = run(BIN, args);
      expect({ args, ...bundled }).toEqual({ args, ...run(UNBUNDLED, args) });
      expect(bundled.stdout + bundled.stderr).not.toBe('');
    }
  });
});

describe('serve from the bin', () => {
  const children: ReturnType<typeof spawn>[] = [];
  afterAll(() => {
    for (const c of children) c.kill('SIGTERM');
  });

  test('serves the dashboard page, its own scripts and the vendor modules', async () => {
    const log = join(tempDir(), 'log.jsonl');
    expect(run(BIN, ['--store', `file:${log}`, 'demo']).code).toBe(0);
    const child = spawn(process.execPath, [BIN, '--store', `file:${log}`, 'serve', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
    children.push(child);
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /(http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.stderr!.setEncoding('utf8').on('data', (d: string) => void (err += d));
      child.on('close', (code) => reject(new Error(`serve exited (${code}): ${err}`)));
    });
    const get = async (path: string) => {
      const r = await fetch(new URL(path, url));
      return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
    };
    const page = await get('/');
    expect(page).toMatchObject({ status: 200, type: 'text/html; charset=utf-8' });
    expect(page.body).toBe(readFileSync(join(ROOT, 'src/server/static/index.html'), 'utf8'));
    const app = await get('/app.js');
    expect(app).toMatchObject({ status: 200, type: 'text/javascript; charset=utf-8' });
    expect(app.body).toBe(readFileSync(join(ROOT, 'src/server/static/app.js'), 'utf8'));
    const preact = await get('/vendor/preact.mjs');
    expect(preact.status).toBe(200);
    expect(preact.body).toContain('export');
    expect((await get('/api/state')).status).toBe(200);
  });
});

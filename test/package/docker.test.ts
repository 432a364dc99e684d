/**
 * The service image cannot be built here (no Docker engine), so this checks what can be: the compose
 * file parses and runs the image beside PostgreSQL with the dashboard published, the Dockerfile copies
 * only files that exist and runs only npm scripts that exist, and the entrypoint turns its
 * environment into the right isogroup command line (with a stub isogroup, and with the real CLI).
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const ENTRYPOINT = join(ROOT, 'docker/entrypoint.sh');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

interface Service {
  build?: string | { context: string };
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string>;
  ports?: string[];
  command?: string[];
}

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };

  test('runs the isogroup image beside KurrentDB and PostgreSQL, on PostgreSQL, with the dashboard published', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['isogroup', 'kurrentdb', 'postgres']);
    const svc = compose.services.isogroup!;
    expect(svc.build).toBe('.');
    expect(svc.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(svc.environment?.ISOGROUP_STORE).toMatch(/^postgres:\/\/postgres@postgres:5432\/isogroup$/);
    expect(Object.keys(svc.environment ?? {}).sort()).toEqual(['ISOGROUP_HOST', 'ISOGROUP_PORT', 'ISOGROUP_STORE', 'ISOGROUP_TOKEN']);
    expect(svc.ports).toEqual([`${svc.environment?.ISOGROUP_PORT}:7800`]);
    expect(dockerfile).toMatch(/^EXPOSE 7800$/m);
    expect(svc.command).toEqual(['serve']);
  });
});

describe('Dockerfile', () => {
  test('multi-stage on a slim base, runs as a non-root user through the entrypoint', () => {
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    expect(dockerfile).toMatch(/^FROM node:20-bookworm-slim AS build$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["isogroup-entrypoint"\]$/m);
  });

  test('copies only files that exist and runs only npm scripts that exist', () => {
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(sources.length).toBeGreaterThan(5);
    for (const s of sources) expect([s, existsSync(join(ROOT, s))]).toEqual([s, true]);
    // .dockerignore as Docker reads it: patterns in order, `*` within one path segment, a match
    // also excludes what is below it, and a later `!pattern` takes a path back in.
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').filter((l) => l !== '');
    const excluded = (path: string): boolean => {
      let out = false;
      for (const line of ignored) {
        const keep = line.startsWith('!');
        const glob = (keep ? line.slice(1) : line).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*');
        if (new RegExp(`^${glob}(/.*)?$`).test(path)) out = !keep;
      }
      return out;
    };
    expect(sources.filter(excluded)).toEqual([]);
    expect(excluded('test/cli/bundle.test.ts')).toBe(true);
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const [, name] of dockerfile.matchAll(/npm run (\S+)/g)) expect(Object.keys(scripts)).toContain(name);
  });
});

describe('docker/entrypoint.sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'isogroup-entrypoint-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const stub = join(dir, 'stub');
  writeFileSync(stub, '#!/bin/sh\nprintf "%s\\n" "$@"\necho "token=${ISOGROUP_TOKEN-unset}"\n');
  chmodSync(stub, 0o755);
  const real = join(dir, 'isogroup');
  writeFileSync(real, `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'dist/src/cli/main.js')}" "$@"\n`);
  chmodSync(real, 0o755);

  const entry = (args: string[], env: Record<string, string>, bin = stub) => {
    const r = spawnSync('sh', [ENTRYPOINT, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ISOGROUP_BIN: bin, ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  test('serve (the default) listens on 0.0.0.0:7800; flags pass through; an empty token is read-only', () => {
    const r = entry([], { ISOGROUP_STORE: 'memory:', ISOGROUP_TOKEN: '' });
    expect(r.stdout).toBe(['serve', '--bind', '0.0.0.0', '--bind-any', '--port', '7800', 'token=unset', ''].join('\n'));
    const flags = entry(['--token', 's3cret-token'], { ISOGROUP_STORE: 'memory:', ISOGROUP_PORT: '9000', ISOGROUP_BIND: '::' });
    expect(flags.stdout).toBe(['serve', '--bind', '::', '--bind-any', '--port', '9000', '--token', 's3cret-token', 'token=unset', ''].join('\n'));
    expect(entry(['serve'], { ISOGROUP_STORE: 'memory:', ISOGROUP_TOKEN: 's3cret-token' }).stdout).toContain('token=s3cret-token');
  });

  test('another command (follow, once it exists) runs as given', () => {
    expect(entry(['follow', '--from', 'x'], { ISOGROUP_STORE: 'memory:' }).stdout).toBe('follow\n--from\nx\ntoken=unset\n');
  });

  test('without ISOGROUP_STORE it says so and fails', () => {
    const r = entry([], {});
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^isogroup: set ISOGROUP_STORE to the store URL/);
  });

  test('with the real CLI: commands reach isogroup with the store from the environment', () => {
    const store = `file:${join(dir, 'log.jsonl')}`;
    expect(entry(['--version'], { ISOGROUP_STORE: store }, real).stdout).toMatch(/^isogroup \d+\.\d+\.\d+ \(event schema v\d+\)\n$/);
    expect(entry(['demo', '--quiet'], { ISOGROUP_STORE: store }, real).code).toBe(0);
    const groups = entry(['groups', '--json'], { ISOGROUP_STORE: store }, real);
    expect(groups.code).toBe(0);
    expect(groups.stdout).toContain('"members"');
    expect(entry(['serve', '--port', 'x'], { ISOGROUP_STORE: store }, real).stderr).toBe('isogroup: --port: expected 0 to 65535, got "x"\n');
  });
});

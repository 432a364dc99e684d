/**
 * What `npm pack` ships (the `files` field of package.json): the built library, its types for both
 * entry points, the CLI, the dashboard's static files, README and CHANGELOG; no tests, fixtures,
 * benchmarks, scripts or TypeScript sources. Source maps are left out: they point at .ts sources the
 * package does not ship, so they would only weigh.
 */
import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string }>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  devDependencies: Record<string, string>;
};
const [report] = JSON.parse(
  execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
) as [{ files: { path: string }[] }];
const files = report.files.map((f) => f.path);

describe('npm pack', () => {
  test('ships types and code for both entry points, the bin, the dashboard, README and CHANGELOG', () => {
    for (const [entry, target] of Object.entries(pkg.exports)) {
      expect([entry, files.includes(target.types.replace(/^\.\//, ''))]).toEqual([entry, true]);
      expect([entry, files.includes(target.default.replace(/^\.\//, ''))]).toEqual([entry, true]);
    }
    expect(Object.keys(pkg.exports).sort()).toEqual(['.', './testkit']);
    for (const bin of Object.values(pkg.bin)) expect(files).toContain(bin);
    expect(files).toEqual(expect.arrayContaining(['README.md', 'CHANGELOG.md', 'package.json', 'src/server/static/index.html']));
  });

  test('ships no tests, fixtures, benchmarks, scripts, sources or source maps', () => {
    const unwanted = files.filter(
      (f) => /(^|\/)(test|tests|fixtures|bench|scripts)\//.test(f) || /\.test\.(js|ts)$/.test(f) || /\.map$/.test(f) || (/\.ts$/.test(f) && !/\.d\.ts$/.test(f)) || f.includes('tsbuildinfo'),
    );
    expect(unwanted).toEqual([]);
  });

  test('the server clients are optional peers (and dev dependencies, so the repository tests them)', () => {
    for (const name of ['pg', '@kurrent/kurrentdb-client']) {
      expect(pkg.dependencies[name]).toBeUndefined();
      expect(pkg.peerDependencies[name]).toBeDefined();
      expect(pkg.peerDependenciesMeta[name]).toEqual({ optional: true });
      expect(pkg.devDependencies[name]).toBe(pkg.peerDependencies[name]);
    }
  });
});

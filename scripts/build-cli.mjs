/**
 * Bundles the command line (src/cli/main.ts) into dist/cli with esbuild; `npm run build` runs it
 * after tsc, which type-checks and emits dist/ for the library's entry points and the tests. The
 * `isogroup` bin is dist/cli/isogroup.js. A cold process then loads a handful of files instead of
 * ~130 modules (each resolved, read and compiled on its own) and commander's CommonJS.
 *
 * Code splitting keeps each command module of src/cli/registry.ts a chunk that only its command
 * loads. Left outside the bundle and found in node_modules at run time, as before: the optional
 * server clients (pg, @kurrent/kurrentdb-client), TypeBox (required on first use by
 * domain/schema/typebox.ts) and preact/htm (served as files by src/server/static.ts). The output
 * is not minified (minified, a cold start measured no faster), so a stack trace still reads, and
 * each module's code follows a `// path` comment (test/cli/cold-start.test.ts reads them).
 */
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';

const outdir = 'dist/cli';

await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: { isogroup: 'src/cli/main.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // The chunks sit three folders below the package root, as dist/src/server does: src/server/static.ts
  // finds the dashboard's page (src/server/static) at the same relative place from both.
  chunkNames: 'chunks/[name]-[hash]',
  external: ['pg', '@kurrent/kurrentdb-client', 'typebox', 'typebox/*', 'preact', 'preact/*', 'htm'],
  // Bundled CommonJS (commander) requires Node's built-ins: the ES module output needs a `require`.
  banner: { js: "import { createRequire as __isogroupCreateRequire } from 'node:module';\nconst require = __isogroupCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

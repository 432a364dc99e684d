/**
 * `isogroup serve`: the audit dashboard and its HTTP API (docs/dashboard.md), until SIGINT/SIGTERM.
 *
 * The bind address: the documented form is `serve [--host 127.0.0.1]`, but `--host NAME` is also the
 * global option naming the log host, and commander gives a global option its value wherever it
 * appears. So `serve` reads the command line itself: `--host` *after* `serve` is the bind address
 * (as documented), `--host` *before* `serve` is the log host shown first (the page's host
 * picker switches between hosts). `--bind ADDR` says the same without the ambiguity and is the
 * one to use for IPv6 addresses.
 */
import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { createServer, type DashboardServer } from '../../server/index.js';
import { CliError } from '../io.js';
import type { App } from '../app.js';
import type { CliContext } from '../context.js';
import { DEFAULT_SEAL_KEY, chainEntries, loadPrivateKey, loadPublicKey } from '../../store/integrity.js';
import type { Hashable } from '../../store/chain.js';
import { DEFAULT_SEAL_DIR, createSealer, parseEvery, type Sealer, type SealerOptions } from '../../store/sealer.js';

interface ServeFlags {
  port?: string;
  bind?: string;
  bindAny?: boolean;
  token?: string;
  sealEvery?: string;
  sealKey?: string;
  sealDir?: string;
}

/** Global options that take a value (their value is not the subcommand name). */
const VALUED = new Set(['--store', '--host']);

/** Splits `--host` occurrences into the ones before the subcommand and the ones after it. */
export const splitHostFlags = (argv: readonly string[], sub = 'serve'): { before: string | undefined; after: string | undefined } => {
  let before: string | undefined;
  let after: string | undefined;
  let seenSub = false;
  for (let i = 0; i < argv.length; i++) {
    const t = argv[i]!;
    if (t === '--') break;
    let value: string | undefined;
    if (t === '--host') value = argv[++i];
    else if (t.startsWith('--host=')) value = t.slice('--host='.length);
    else if (VALUED.has(t)) {
      i++;
      continue;
    } else if (!t.startsWith('-') && !seenSub) {
      seenSub = t === sub;
      continue;
    }
    if (value === undefined) continue;
    if (seenSub) after = value;
    else before = value;
  }
  return { before, after };
};

/** Resolves with the signal's name on SIGINT/SIGTERM, or 'stop' when `stop` settles (tests). */
const waitForStop = (stop?: Promise<unknown>): Promise<string> =>
  new Promise((resolve) => {
    const done = (why: string) => (): void => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(why);
    };
    const onInt = done('SIGINT');
    const onTerm = done('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    stop?.then(done('stop'), done('stop'));
  });

/** The sealer's settings from --seal-every/--seal-key/--seal-dir (paths relative to the working directory). */
const sealOptions = async (ctx: CliContext, o: ServeFlags): Promise<Omit<SealerOptions, 'store' | 'hosts'>> => {
  const at = (f: string): string => (isAbsolute(f) ? f : resolve(ctx.io.cwd, f));
  const dir = at(o.sealDir ?? DEFAULT_SEAL_DIR);
  try {
    if (o.sealEvery === undefined) {
      return { dir, ...(o.sealKey !== undefined ? { trusted: await loadPublicKey(at(o.sealKey)) } : {}) };
    }
    const everyMs = parseEvery(o.sealEvery);
    return { dir, everyMs, key: await loadPrivateKey(at(o.sealKey ?? DEFAULT_SEAL_KEY)) };
  } catch (error) {
    throw new CliError((error as Error).message);
  }
};

export interface ServeHooks {
  /** Stops the server when it settles (in-process tests; the CLI waits for SIGINT/SIGTERM). */
  readonly stop?: Promise<unknown>;
}

export const registerServe = (program: Command, app: App, hooks: ServeHooks = {}): void => {
  program
    .command('serve')
    .option('--port <n>', 'TCP port (0 picks a free one)', '7800')
    .option('--bind <addr>', 'address to listen on (default 127.0.0.1)')
    .option('--host <addr>', 'after "serve": the address to listen on, like --bind; before "serve" it names the log host')
    .option('--bind-any', 'allow a non-loopback address (the dashboard has no TLS and no accounts)')
    .option('--token <T>', 'enable POST /api/commands for requests with "Authorization: Bearer T" (opens the store for writing; env ISOGROUP_TOKEN)')
    .option('--seal-every <period>', 'seal every host whose log moved, every period (30s, 10m, 1h): see `isogroup seal`')
    .option('--seal-key <file>', `Ed25519 key to seal with (default ${DEFAULT_SEAL_KEY}); without --seal-every, the key seals must be signed with`)
    .option('--seal-dir <dir>', `where seals are written and where the seal panel looks for them (default ${DEFAULT_SEAL_DIR}; ship them elsewhere)`)
    .description('the audit dashboard and its HTTP API (JSON + server-sent events), read-only unless --token; runs until Ctrl-C')
    .addHelpText(
      'after',
      `
Examples:
  $ isogroup serve                                  http://127.0.0.1:7800/, read-only
  $ isogroup --host lab1 serve --port 0             show host lab1 first, any free port
  $ isogroup serve --token s3cret                   also accept POST /api/commands with that bearer token
  $ isogroup serve --seal-every 10m --seal-dir /mnt/audit/seals
                                                    seal each host every 10 minutes (key: isogroup seal --new-key)`,
    )
    .action(
      app.action(async (ctx, o: ServeFlags) => {
        const raw = (program as unknown as { rawArgs?: string[] }).rawArgs ?? [];
        const split = splitHostFlags(raw);
        if (split.after !== undefined && o.bind !== undefined && split.after !== o.bind) {
          throw new CliError(`serve: --host ${split.after} and --bind ${o.bind} disagree; give one bind address`);
        }
        const bind = o.bind ?? split.after ?? '127.0.0.1';
        // The global --host was taken by the bind address when it came after "serve".
        const logHost = split.after !== undefined ? (split.before ?? ctx.io.env.ISOGROUP_HOST) : ctx.host;
        if (logHost !== undefined && !/^[A-Za-z0-9._-]{1,128}$/.test(logHost)) throw new CliError(`--host: ${JSON.stringify(logHost)} is not a host name (letters, digits, . _ -)`);
        if (!/^\d{1,5}$/.test(o.port ?? '') || Number(o.port) > 65535) throw new CliError(`--port: expected 0 to 65535, got ${JSON.stringify(o.port)}`);
        const port = Number(o.port);
        const token = o.token ?? ctx.io.env.ISOGROUP_TOKEN;
        if (token !== undefined && token.length < 8) throw new CliError('--token: use at least 8 characters');

        const seals = await sealOptions(ctx, o);

        // Read-only (no file lock) unless a token enables writes.
        const store = await ctx.store({ write: token !== undefined });
        let server: DashboardServer | undefined;
        let sealer: Sealer | undefined;
        try {
          const hosts = async (): Promise<string[]> => (server ? (await server.registry.hosts()).map((h) => h.host) : []);
          // A file log is checked over its raw lines (as `check --integrity` does), so an edit shows.
          const entries = (stream: string): Promise<Hashable[]> => chainEntries(ctx.storeUrl, stream, async () => store);
          sealer = createSealer({ store, hosts, entries, warn: (m) => ctx.err(`isogroup: warning: ${m}\n`), ...seals });
          server = await createServer({ store, ...(logHost !== undefined ? { host: logHost } : {}), ...(token !== undefined ? { token } : {}), port, bind, bindAny: o.bindAny ?? false, seals: sealer });
        } catch (err) {
          await sealer?.close();
          const e = err as NodeJS.ErrnoException;
          if (e.code === 'EADDRINUSE') throw new CliError(`port ${port} on ${bind} is in use: pick another with --port (0 picks a free one)`);
          if (e.code === 'ENOTLOOPBACK' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES') throw new CliError(e.message);
          throw err;
        }
        try {
          // Load the first host now, so the first page view does not wait for a replay.
          const first = await server.registry.defaultHost();
          const h = await server.registry.get(first);
          const entries = h.manager.state.pos;
          if (!/^(127\.|::1$|localhost$|\[::1\]$)/.test(bind)) ctx.err(`isogroup: warning: the dashboard listens on ${bind}: anyone who can reach it can read the audit log${token ? ' and, with the token (sent in clear text, no TLS), write to it' : ''}\n`);
          const sealing = seals.everyMs !== undefined ? { sealing: { everyMs: seals.everyMs, dir: o.sealDir ?? DEFAULT_SEAL_DIR } } : {};
          if (ctx.json) ctx.emit({ url: server.url, host: first, entries, writable: token !== undefined, ...sealing });
          else ctx.out(`isogroup dashboard: ${server.url}  (host ${first}, ${entries} entries, ${token ? 'commands enabled with the token' : 'read-only'}; Ctrl-C to stop)\n`);
          if (seals.everyMs !== undefined) {
            await sealer.sealNow();
            if (!ctx.json) ctx.out(`sealing every ${o.sealEvery} into ${o.sealDir ?? DEFAULT_SEAL_DIR}\n`);
          }
          const why = await waitForStop(hooks.stop);
          if (!ctx.json) ctx.err(`isogroup: ${why}: closing the dashboard\n`);
        } finally {
          await sealer.close();
          await server.close();
        }
        return 0;
      }),
    );
};

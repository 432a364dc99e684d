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
import type { Command } from 'commander';
import { createServer } from '../../server/index.js';
import { CliError } from '../io.js';
import type { App } from '../app.js';

interface ServeFlags {
  port?: string;
  bind?: string;
  bindAny?: boolean;
  token?: string;
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
    .description('the audit dashboard and its HTTP API (JSON + server-sent events), read-only unless --token; runs until Ctrl-C')
    .addHelpText(
      'after',
      `
Examples:
  $ isogroup serve                                  http://127.0.0.1:7800/, read-only
  $ isogroup --host lab1 serve --port 0             show host lab1 first, any free port
  $ isogroup serve --token s3cret                   also accept POST /api/commands with that bearer token`,
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

        // Read-only (no file lock) unless a token enables writes.
        const store = await ctx.store({ write: token !== undefined });
        let server;
        try {
          server = await createServer({ store, ...(logHost !== undefined ? { host: logHost } : {}), ...(token !== undefined ? { token } : {}), port, bind, bindAny: o.bindAny ?? false });
        } catch (err) {
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
          if (ctx.json) ctx.emit({ url: server.url, host: first, entries, writable: token !== undefined });
          else ctx.out(`isogroup dashboard: ${server.url}  (host ${first}, ${entries} entries, ${token ? 'commands enabled with the token' : 'read-only'}; Ctrl-C to stop)\n`);
          const why = await waitForStop(hooks.stop);
          if (!ctx.json) ctx.err(`isogroup: ${why}: closing the dashboard\n`);
        } finally {
          await server.close();
        }
        return 0;
      }),
    );
};

/**
 * What every CLI command gets: global options (--store, --host, --json), the io, and a way to
 * open the host's manager (loaded from the log, with a progress bar on long replays).
 */
import { resolve } from 'node:path';
import { createManager, type At, type Manager } from '../manager.js';
import { parseQueryAt, type QuerySyntax } from '../queries/index.js';
import { openStore, redactUrl, resolveStoreUrl } from '../store/open.js';
import { parseByteSize } from '../store/file.js';
import type { EventStore } from '../store/types.js';
import { CliError, paint, progressBar, type Io, type Paint } from './io.js';

export interface GlobalOptions {
  readonly store?: string;
  readonly host?: string;
  readonly json?: boolean;
  readonly wait?: boolean;
  readonly snapshotEvery?: string;
  readonly segmentSize?: string;
}

export interface CliContext {
  readonly io: Io;
  readonly json: boolean;
  readonly host: string;
  readonly storeUrl: string;
  readonly paint: Paint;
  out(text: string): void;
  err(text: string): void;
  /** Prints one JSON value on its own line. */
  emit(value: unknown): void;
  /** Opens the store (for writing when `write`) and loads the host's manager. */
  manager(options?: { write?: boolean; snapshotEvery?: number; verifyChain?: boolean }): Promise<Manager>;
  store(options?: { write?: boolean }): Promise<EventStore>;
  /** Closes what was opened (releases the file lock). */
  close(): Promise<void>;
  /** True once something was printed on stdout (a command that printed is not run again). */
  readonly printed: boolean;
}

export interface ContextOptions {
  /** Persisted snapshots off whatever ISOGROUP_SNAPSHOTS says (a command run again after a damaged snapshot part). */
  readonly noSnapshots?: boolean;
}

export const createContext = (io: Io, g: GlobalOptions, options: ContextOptions = {}): CliContext => {
  const storeUrl = resolveStoreUrl(g.store ?? io.env.ISOGROUP_STORE);
  const host = g.host ?? io.env.ISOGROUP_HOST ?? 'local';
  const every = g.snapshotEvery ?? io.env.ISOGROUP_SNAPSHOT_EVERY;
  const snapshotDefault = every === undefined ? undefined : Number(every);
  if (snapshotDefault !== undefined && !(Number.isSafeInteger(snapshotDefault) && snapshotDefault > 0)) {
    throw new CliError(`--snapshot-every: expected a positive integer, got ${JSON.stringify(every)}`);
  }
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(host)) throw new CliError(`--host: ${JSON.stringify(host)} is not a host name (letters, digits, . _ -)`);
  const fromEnv = persistedFromEnv(io.env.ISOGROUP_SNAPSHOTS);
  const persisted = options.noSnapshots ? false : fromEnv;
  let printed = false;
  const segmentBytes = g.segmentSize ?? io.env.ISOGROUP_SEGMENT_BYTES;
  if (segmentBytes !== undefined && segmentBytes !== '' && parseByteSize(segmentBytes) === undefined) {
    throw new CliError(`${g.segmentSize !== undefined ? '--segment-size' : 'ISOGROUP_SEGMENT_BYTES'}: expected a size in bytes (e.g. 67108864, 64M or 1G), got ${JSON.stringify(segmentBytes.slice(0, 40))}`);
  }
  const opened: EventStore[] = [];
  const managers: Manager[] = [];
  const open = async (write: boolean): Promise<EventStore> => {
    const s = await openStore(storeUrl, {
      file: {
        readOnly: !write,
        lazy: !write,
        wait: g.wait ?? false,
        warn: (m: string) => io.stderr.write(`isogroup: warning: ${m}\n`),
        ...(segmentBytes ? { segmentBytes } : {}),
        ...(io.env.ISOGROUP_SEGMENT_KEY ? { segmentKey: resolve(io.cwd, io.env.ISOGROUP_SEGMENT_KEY) } : {}),
      },
    });
    opened.push(s);
    return s;
  };
  const ctx: CliContext = {
    io,
    json: g.json ?? false,
    host,
    storeUrl,
    paint: paint(io.stdout, io.env),
    get printed() {
      return printed;
    },
    out: (t) => {
      printed = true;
      io.stdout.write(t);
    },
    err: (t) => void io.stderr.write(t),
    emit: (v) => {
      printed = true;
      io.stdout.write(`${JSON.stringify(v)}\n`);
    },
    store: ({ write = false } = {}) => open(write),
    async manager({ write = false, snapshotEvery = snapshotDefault, verifyChain = false } = {}) {
      const store = await open(write);
      const warn = (msg: string): void => void io.stderr.write(`isogroup: warning: ${msg}\n`);
      // Writers keep the persisted snapshots current; one-shot readers only use them, and read them
      // in parts (a damaged part makes the command run again without snapshots: program.ts).
      const m = createManager({ store, host, verifyChain, ...(snapshotEvery ? { snapshotEvery } : {}), persisted: persisted && { ...persisted, write, warn, inParts: !write } });
      managers.push(m);
      const bar = progressBar(io.stderr, `replaying ${redactUrl(storeUrl)}`);
      await m.load(bar);
      bar.end();
      return m;
    },
    async close() {
      for (const m of managers.splice(0)) await m.close();
      for (const s of opened.splice(0)) await s.close();
    },
  };
  return ctx;
};

/** `ISOGROUP_SNAPSHOTS`: `off` (or 0) turns persisted snapshots off, a number sets their spacing. */
export const persistedFromEnv = (value: string | undefined): false | { every?: number } => {
  if (value === undefined || value === '' || value === 'on') return {};
  if (value === 'off' || value === '0') return false;
  const every = Number(value);
  if (!Number.isSafeInteger(every) || every < 1) throw new CliError(`ISOGROUP_SNAPSHOTS: expected off or a positive number of entries, got ${JSON.stringify(value)}`);
  return { every };
};

/** CLI flags in the shared query rules: spelled `--name`, a bad value is a usage error (exit 2). */
export const cliSyntax: QuerySyntax = { name: (field) => `--${field}`, fail: (message) => new CliError(message) };

/** Parses `--at` / `--until` / `--from` / `--to`: a log position or an ISO time (`live`: the latest state). */
export const parseAt = (value: string | undefined, flag = '--at'): At | undefined => parseQueryAt(value, cliSyntax, flag.replace(/^--/, ''));

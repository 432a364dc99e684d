/**
 * Periodic seals (`serve --seal-every`, `createFleet({ seal })`) and what the dashboard's seal panel
 * shows: the newest seal of a host and whether the log still holds the prefix it signed.
 *
 * Every `everyMs` the sealer checks each host's chain (a broken chain is never sealed: it is
 * reported instead) and, when the stream moved since its last seal, writes a new seal (the same
 * statement as `isogroup seal`) to `dir` as `<host>-<pos>-<time>.seal.json`. Seals are worth
 * something only once they are out of reach of whoever can edit the log: point `dir` at another
 * machine's mount, or ship its files elsewhere.
 */
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { EventStore } from './types.js';
import { StoreError, streamOfHost } from './types.js';
import { verifyChain, type ChainBreak, type Hashable } from './chain.js';
import { knownHeadOf, makeSeal, openSeal, storeChainEntries, type Seal } from './integrity.js';

export const DEFAULT_SEAL_DIR = '.isogroup/seals';

/** `--seal-every` values: `500ms`, `30s`, `10m`, `1h` (a bare number is seconds). */
export const parseEvery = (text: string, flag = '--seal-every'): number => {
  const m = /^(\d{1,9})(ms|s|m|h)?$/.exec(text.trim());
  const ms = m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'] : NaN;
  if (!(ms >= 100)) throw new StoreError(`${flag}: expected a period like 30s, 10m or 1h (at least 100ms), got ${JSON.stringify(text.slice(0, 40))}`, 'EINVAL');
  return ms;
};

export interface SealerOptions {
  readonly store: EventStore;
  /** The hosts to seal and to answer for. */
  readonly hosts: () => Promise<readonly string[]> | readonly string[];
  /** Where seal files go and are looked for. */
  readonly dir: string;
  /** The Ed25519 private key to seal with; without it nothing is sealed (the panel still verifies seals found in `dir`). */
  readonly key?: KeyObject;
  /** The key seals must be signed with to count (default: the public half of `key`; else the key each seal carries). */
  readonly trusted?: KeyObject;
  /** Seal every so many milliseconds (default: never; `sealNow` still works). */
  readonly everyMs?: number;
  /** A stream's entries as stored (default: as the store reads them; `serve` reads a file log's raw lines, like `check --integrity`). */
  readonly entries?: (stream: string) => Promise<Hashable[]>;
  /** How long a panel answer may be reused while the stream's version stays the same (default 10 s). */
  readonly recheckMs?: number;
  /** Warnings (a broken chain, a seal that could not be written). Default: stderr. */
  readonly warn?: (message: string) => void;
}

/** What the seal panel shows for a host. */
export interface SealStatus {
  readonly host: string;
  /** Entries in the host's stream now, and the chain head. */
  readonly entries: number;
  readonly head: string;
  /** The newest seal of the host (null: none yet), with the file it is in. */
  readonly seal: (Pick<Seal, 'pos' | 'head' | 'at' | 'publicKey'> & { readonly file: string }) | null;
  /** true: signed by the trusted key and the log still holds the sealed prefix; false: see `problem`; null: no seal. */
  readonly verifies: boolean | null;
  readonly problem?: string;
  readonly break?: ChainBreak;
  /** Whether the server seals by itself, how often and where. */
  readonly sealing: { readonly everyMs: number; readonly dir: string } | null;
  /** Checked against a given key, or only against the key the seal carries (proves it unaltered, not who signed). */
  readonly trust: 'key' | 'carried';
}

export interface Sealer {
  /** Seals every host whose stream moved since its last seal; the seals written. */
  sealNow(): Promise<Seal[]>;
  status(host: string): Promise<SealStatus>;
  close(): Promise<void>;
}

const FILE = /^(.+)-(\d+)-(\d{8}T\d{6}\d{3}Z)\.seal\.json$/;
const stamp = (iso: string): string => iso.replace(/[-:.]/g, '');

/** The file name a seal is kept under: `<host>-<pos>-<time>.seal.json` (the seal panel finds the newest by it). */
export const sealFileName = (seal: Pick<Seal, 'host' | 'pos' | 'at'>): string => `${seal.host}-${seal.pos}-${stamp(seal.at)}.seal.json`;

export const createSealer = (o: SealerOptions): Sealer => {
  const warn = o.warn ?? ((m: string) => void process.stderr.write(`isogroup: warning: ${m}\n`));
  const trusted = o.trusted ?? (o.key ? createPublicKey(o.key) : undefined);
  const last = new Map<string, { seal: Seal; file: string }>();
  const verified = new Map<string, { key: string; t: number; status: SealStatus }>();
  const entriesOf = o.entries ?? ((stream: string) => storeChainEntries(o.store, stream));
  const recheckMs = o.recheckMs ?? 10_000;
  let running: Promise<Seal[]> | undefined;
  let closed = false;

  /** The newest seal file of `host` in the directory (highest position, then latest time). */
  const newestFile = async (host: string): Promise<string | undefined> => {
    let names: string[];
    try {
      names = await readdir(o.dir);
    } catch {
      return undefined;
    }
    let best: { name: string; pos: number; t: string } | undefined;
    for (const name of names) {
      const m = FILE.exec(name);
      if (!m || m[1] !== host) continue;
      const pos = Number(m[2]);
      if (!best || pos > best.pos || (pos === best.pos && m[3]! > best.t)) best = { name, pos, t: m[3]! };
    }
    return best && join(o.dir, best.name);
  };

  const sealHost = async (host: string): Promise<Seal | undefined> => {
    const stream = streamOfHost(host);
    const r = verifyChain(await entriesOf(stream));
    if (r.break) {
      warn(`not sealing host ${host}: its hash chain breaks at #${r.break.pos} (${r.break.kind}: ${r.break.message})`);
      return undefined;
    }
    const prev = last.get(host)?.seal;
    if (r.entries === 0 || (prev && prev.pos === r.entries && prev.head === r.head)) return undefined;
    const seal = makeSeal(o.key!, { host, stream, pos: r.entries, head: r.head, at: new Date().toISOString() });
    const file = join(o.dir, sealFileName(seal));
    await mkdir(o.dir, { recursive: true });
    await writeFile(file, `${JSON.stringify(seal)}\n`, { flag: 'wx' });
    last.set(host, { seal, file });
    return seal;
  };

  const sealNow = (): Promise<Seal[]> =>
    (running ??= (async () => {
      try {
        if (!o.key) return [];
        const out: Seal[] = [];
        for (const host of await o.hosts()) {
          try {
            const s = await sealHost(host);
            if (s) out.push(s);
          } catch (error) {
            warn(`could not seal host ${host}: ${(error as Error).message}`);
          }
        }
        return out;
      } finally {
        running = undefined;
      }
    })());

  const timer = o.key && o.everyMs !== undefined ? setInterval(() => void sealNow(), o.everyMs) : undefined;
  timer?.unref();

  const status = async (host: string): Promise<SealStatus> => {
    const stream = streamOfHost(host);
    // A file log cut back under a reader makes the store refuse to read on: the raw check below still answers.
    const version = await o.store.version(stream).catch(() => -1);
    const file = last.get(host)?.file ?? (await newestFile(host));
    const key = `${file ?? ''}:${version}`;
    const hit = verified.get(host);
    // A panel polled by several pages verifies once per change, and at least every 10 s (an edit made with SQL changes no version).
    if (hit && hit.key === key && Date.now() - hit.t < recheckMs) return hit.status;
    const entries = await entriesOf(stream);
    const base = {
      host,
      sealing: o.key && o.everyMs !== undefined ? { everyMs: o.everyMs, dir: o.dir } : null,
      trust: trusted ? ('key' as const) : ('carried' as const),
    };
    let result: SealStatus;
    if (file === undefined) {
      const r = verifyChain(entries);
      result = { ...base, entries: r.entries, head: r.head, seal: null, verifies: null, ...(r.break ? { break: r.break } : {}) };
    } else {
      let seal: Seal | undefined;
      let shown: SealStatus['seal'] = null;
      let problem: string | undefined;
      try {
        const text = await readFile(file, 'utf8');
        const claimed = JSON.parse(text) as Partial<Seal>;
        if (typeof claimed.pos === 'number' && typeof claimed.head === 'string' && typeof claimed.at === 'string') {
          shown = { pos: claimed.pos, head: claimed.head, at: claimed.at, publicKey: String(claimed.publicKey ?? ''), file };
        }
        seal = openSeal(text, file, trusted);
        if (seal.host !== host) problem = `${file} seals host ${seal.host}, not ${host}`;
      } catch (error) {
        problem = (error as Error).message;
      }
      const r = verifyChain(entries, seal && problem === undefined ? knownHeadOf(seal) : undefined);
      if (problem === undefined && r.break) problem = `#${r.break.pos} ${r.break.kind}: ${r.break.message}`;
      result = {
        ...base,
        entries: r.entries,
        head: r.head,
        seal: shown,
        verifies: problem === undefined,
        ...(problem !== undefined ? { problem } : {}),
        ...(r.break ? { break: r.break } : {}),
      };
    }
    verified.set(host, { key, t: Date.now(), status: result });
    return result;
  };

  return {
    sealNow,
    status,
    close: async () => {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      await running;
    },
  };
};

/**
 * One manager per host, loaded on first use and kept following the store, plus what the server
 * needs on top: a cache of past states (a slider dragged back and forth asks for the same few
 * positions many times), the domain → ctx history that makes log sentences read right at any
 * position, and an index of alerts by position.
 *
 * Catching up and running commands go through one queue per host. Why: the manager adopts the
 * decider's state after its own append; if a catch-up ran between that append and the adoption,
 * the same events would be applied twice. Serialising both makes that impossible.
 */
import type { Alert, State } from '../../domain/index.js';
import type { SentenceContext } from '../../projections/index.js';
import { createManager, type At, type Manager } from '../manager.js';
import type { ExecResult } from '../engine.js';
import { hostOfStream, streamOfHost, type EventStore, type RecordedEvent, type Subscription } from '../store/types.js';
import { HttpError } from './http.js';

export const HOST_NAME = /^[A-Za-z0-9._-]{1,128}$/;

/** Entries read per slice by the sentence/problem scan. */
const FEED_SLICE = 10_000;
/** The only entry types the scan looks at (a store that can skip the others unread does: `readTypes`). */
const FEED_TYPES = ['CommandRejected', 'FaultRecorded', 'DmaChecked', 'DomainAllocated', 'ContextOpened'] as const;

export interface HostHandle {
  readonly host: string;
  readonly manager: Manager;
  /** The state at a position or time, and the position it resolved to (cached). */
  stateAt(at: At | undefined): Promise<State>;
  /** Sentence lookups (domain → ctx, ctx → uid) as they were at `pos`. */
  sentenceContext(pos: number): Promise<SentenceContext>;
  /** Alerts raised by the entry at `pos` (from the current state; alerts are only added, or counted in place). */
  alertsAt(pos: number): readonly Alert[];
  /** Positions in [from, to] of refusals, faults, denied DMA checks and entries that raised alerts. */
  problemPositions(from: number, to: number): Promise<number[]>;
  /** Runs commands through the manager (serialised with catch-ups). */
  exec(commands: readonly unknown[]): Promise<ExecResult[]>;
  /** Resolves once the manager has caught up with everything the store holds now. */
  sync(): Promise<void>;
}

export interface HostRegistry {
  /** The host named, loading it on first use. Unknown hosts are a 404 unless `create`. */
  get(host: string | undefined, options?: { create?: boolean }): Promise<HostHandle>;
  hosts(): Promise<{ host: string; entries: number }[]>;
  defaultHost(): Promise<string>;
  close(): Promise<void>;
}

export interface RegistryOptions {
  readonly store: EventStore;
  /** The host to show when none is asked for (default: "local" if present, else the first). */
  readonly host?: string;
  /** Snapshot spacing of the server's managers (default 2,000: a slider move replays < 2,000 entries). */
  readonly snapshotEvery?: number;
  /** How many past states to keep (default 24). */
  readonly cacheStates?: number;
}

interface Owned {
  readonly pos: number;
  readonly value: string | number | null;
}

const lookup = (history: Map<string, Owned[]>, key: string, pos: number): string | number | null | undefined => {
  const list = history.get(key);
  if (!list) return undefined;
  for (let i = list.length - 1; i >= 0; i--) if (list[i]!.pos <= pos) return list[i]!.value;
  return undefined;
};

const createHandle = async (store: EventStore, host: string, o: RegistryOptions): Promise<HostHandle & { close(): Promise<void> }> => {
  const manager = createManager({ store, host, snapshotEvery: o.snapshotEvery ?? 2000 });
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
  await serial(() => manager.load());

  // Follow other writers: every new event schedules one catch-up (coalesced).
  let pending: Promise<void> | null = null;
  const sync = (): Promise<void> => {
    pending ??= serial(async () => {
      pending = null;
      await manager.load();
    });
    return pending;
  };
  let closed = false;
  // From the last entry the loaded state holds: the subscription's catch-up delivers only what is new.
  const follow: Subscription = store.subscribe({
    stream: manager.stream,
    ...(manager.checkpoint !== undefined ? { after: manager.checkpoint } : {}),
    onEvent: (e) => {
      if (!closed && e.pos > manager.state.pos) void sync().catch(() => undefined);
    },
    onError: () => undefined,
  });

  // Past states: immutable once computed, so a small LRU of promises is all it takes.
  const cacheSize = o.cacheStates ?? 24;
  const cache = new Map<number, Promise<State>>();
  const stateAt = async (at: At | undefined): Promise<State> => {
    const current = manager.state;
    if (at === undefined) return current;
    const pos = manager.positionAt(at);
    if (pos >= current.pos) return current;
    let hit = cache.get(pos);
    if (hit) {
      cache.delete(pos);
      cache.set(pos, hit);
      return hit;
    }
    hit = manager.stateAt(pos);
    cache.set(pos, hit);
    hit.catch(() => cache.delete(pos));
    while (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
    return hit;
  };

  // Domain → ctx and ctx → uid over time, and the positions of problems, fed from the log as far
  // as anyone has asked (all of it at load, so no request pays for a full scan).
  const domains = new Map<string, Owned[]>();
  const ctxs = new Map<string, Owned[]>();
  const problems: number[] = [];
  let fed = 0;
  let feeding: Promise<void> = Promise.resolve();
  const feed = (e: RecordedEvent): void => {
    const d = e.data as { domain?: string; ctx?: string | null; uid?: number; allowed?: boolean };
    if (e.type === 'CommandRejected' || e.type === 'FaultRecorded' || (e.type === 'DmaChecked' && d.allowed === false)) problems.push(e.pos);
    const note = (m: Map<string, Owned[]>, k: string, value: string | number | null): void => {
      const list = m.get(k);
      if (list) list.push({ pos: e.pos, value });
      else m.set(k, [{ pos: e.pos, value }]);
    };
    if (e.type === 'DomainAllocated' && typeof d.domain === 'string') note(domains, d.domain, d.ctx ?? null);
    else if (e.type === 'ContextOpened' && typeof d.ctx === 'string' && typeof d.uid === 'number') note(ctxs, d.ctx, d.uid);
  };
  const feedTo = (pos: number): Promise<void> => {
    // A failed read fails its callers, not every later one.
    feeding = feeding.catch(() => undefined).then(async () => {
      // In slices: a store that reads a range at once holds one slice of entries, not the whole log.
      while (fed < pos) {
        const to = Math.min(pos, fed + FEED_SLICE);
        if (store.readTypes) {
          // Only the few entries that matter are decoded: on a long log of mappings, next to none.
          for await (const e of store.readTypes(manager.stream, FEED_TYPES, { from: fed + 1, to })) feed(e);
          fed = Math.min(to, await store.version(manager.stream));
        } else {
          for await (const e of manager.log.read(fed + 1, to)) {
            feed(e as RecordedEvent);
            fed = e.pos;
          }
        }
        if (fed < to) return;
      }
    });
    return feeding;
  };

  // In the background: the host is served at once (from a persisted snapshot); the first request
  // that needs sentences or problem positions waits for the scan to get that far.
  feedTo(manager.state.pos).catch(() => undefined);

  // Indices into the alerts, by position: an aggregated fault alert is replaced in place as it counts.
  const alertIndex = new Map<number, number[]>();
  let indexed = 0;
  const alertsAt = (pos: number): readonly Alert[] => {
    const all = manager.state.alerts;
    for (; indexed < all.length; indexed++) {
      const a = all[indexed]!;
      const list = alertIndex.get(a.pos);
      if (list) list.push(indexed);
      else alertIndex.set(a.pos, [indexed]);
    }
    return (alertIndex.get(pos) ?? []).map((i) => all[i]!);
  };

  return {
    host,
    manager,
    stateAt,
    async sentenceContext(pos) {
      await feedTo(pos);
      return {
        ctxOfDomain: (d) => lookup(domains, d, pos) as string | null | undefined,
        uidOfCtx: (c) => (lookup(ctxs, c, pos) ?? undefined) as number | undefined,
      };
    },
    alertsAt,
    async problemPositions(from, to) {
      await feedTo(to);
      alertsAt(0); // brings the alert index up to date
      const out = new Set<number>();
      for (const p of problems) if (p >= from && p <= to) out.add(p);
      for (const p of alertIndex.keys()) if (p >= from && p <= to) out.add(p);
      return [...out].sort((a, b) => a - b);
    },
    exec: (commands) => serial(() => manager.execMany(commands)),
    sync,
    async close() {
      closed = true;
      await follow.close().catch(() => undefined);
      await queue.catch(() => undefined);
      await manager.close();
    },
  };
};

export const createHostRegistry = (o: RegistryOptions): HostRegistry => {
  const handles = new Map<string, Promise<HostHandle & { close(): Promise<void> }>>();
  const hosts = async (): Promise<{ host: string; entries: number }[]> => {
    const out: { host: string; entries: number }[] = [];
    for (const s of await o.store.streams()) {
      const h = hostOfStream(s);
      if (h !== null) out.push({ host: h, entries: await o.store.version(s) });
    }
    return out.sort((a, b) => a.host.localeCompare(b.host));
  };
  const defaultHost = async (): Promise<string> => {
    if (o.host !== undefined) return o.host;
    const list = await hosts();
    return list.find((h) => h.host === 'local')?.host ?? list[0]?.host ?? 'local';
  };
  return {
    hosts,
    defaultHost,
    async get(name, options = {}) {
      const host = name ?? (await defaultHost());
      if (!HOST_NAME.test(host)) throw new HttpError(400, `host: ${JSON.stringify(host.slice(0, 40))} is not a host name (letters, digits, . _ -)`);
      let h = handles.get(host);
      if (!h) {
        if (!options.create && host !== (await defaultHost()) && (await o.store.version(streamOfHost(host))) === 0) {
          throw new HttpError(404, `no host ${JSON.stringify(host)} in this store (GET /api/hosts lists them)`);
        }
        h = handles.get(host) ?? createHandle(o.store, host, o);
        handles.set(host, h);
        h.catch(() => handles.delete(host));
      }
      return h;
    },
    async close() {
      const all = [...handles.values()];
      handles.clear();
      await Promise.all(all.map(async (p) => (await p.catch(() => null))?.close()));
    },
  };
};

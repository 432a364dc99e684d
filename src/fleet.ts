/**
 * A fleet: every host (stream) of one store, followed live through a single store-wide
 * subscription — what a fleet dashboard or an audit service needs. Managers are created (and
 * caught up) the first time a host is seen or asked for.
 */
import { Subject, type Observable } from 'rxjs';
import { createManager, type Manager } from './manager.js';
import { DEFAULT_SEAL_DIR, createSealer, type Sealer, type SealerOptions } from './store/sealer.js';
import { headCheckpoint } from './store/head.js';
import { hostOfStream, type EventStore, type RecordedEvent, type Subscription } from './store/types.js';

export interface FleetEvent {
  readonly host: string;
  readonly event: RecordedEvent;
}

export interface Fleet {
  /** Hosts known so far (from the store and from live events). */
  hosts(): string[];
  /** The host's manager, loaded and kept current by the fleet subscription. */
  manager(host: string): Promise<Manager>;
  /** Every entry of every host, live (hot: entries before you subscribe are not replayed), in store order. */
  readonly events$: Observable<FleetEvent>;
  /** A host appeared for the first time. */
  readonly hosts$: Observable<string>;
  /** Resolves when everything present at start has been delivered. */
  readonly caughtUp: Promise<void>;
  close(): Promise<void>;
  /** Seals of every host (periodic when created with `seal.everyMs` and a key). */
  readonly sealer: Sealer;
}

export const createFleet = async (options: { store: EventStore; snapshotEvery?: number; seal?: Omit<SealerOptions, 'store' | 'hosts'> }): Promise<Fleet> => {
  const { store } = options;
  const managers = new Map<string, Promise<Manager>>();
  const known = new Set<string>();
  const events$ = new Subject<FleetEvent>();
  const hosts$ = new Subject<string>();
  const note = (host: string): void => {
    if (!known.has(host)) {
      known.add(host);
      hosts$.next(host);
    }
  };
  for (const s of await store.streams()) {
    const h = hostOfStream(s);
    if (h !== null) note(h);
  }
  const manager = (host: string): Promise<Manager> => {
    let m = managers.get(host);
    if (!m) {
      const created = createManager({ store, host, ...(options.snapshotEvery ? { snapshotEvery: options.snapshotEvery } : {}) });
      m = created.load().then(() => created);
      managers.set(host, m);
      note(host);
    }
    return m;
  };
  // From the end of the log as it is now: what came before is in the managers (each loads its host
  // on first use), not delivered again. An entry appended while the fleet starts may be missed by
  // events$; a manager that misses one catches up on the next (a gap makes it reload).
  const after = await headCheckpoint(store);
  const sub: Subscription = store.subscribe({
    ...(after !== undefined ? { after } : {}),
    onEvent: async (e) => {
      const host = e.stream ? hostOfStream(e.stream) : null;
      if (host === null) return;
      note(host);
      const m = managers.get(host);
      if (m) (await m).receive(e);
      events$.next({ host, event: e });
    },
  });
  const sealer = createSealer({ store, hosts: () => [...known].sort(), dir: DEFAULT_SEAL_DIR, ...options.seal });
  return {
    sealer,
    hosts: () => [...known].sort(),
    manager,
    events$: events$.asObservable(),
    hosts$: hosts$.asObservable(),
    caughtUp: sub.caughtUp,
    close: async () => {
      await sealer.close();
      await sub.close();
      events$.complete();
      hosts$.complete();
    },
  };
};

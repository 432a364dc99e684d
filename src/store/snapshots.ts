/**
 * Where persisted snapshots live, per store: a folder beside the file log (one file per stream and
 * position), a table in PostgreSQL, a Map for the memory store. The manager only sees this
 * interface; choosing and trusting a snapshot is src/snapshot/restore.ts's job.
 */

/** Where the entry at `pos` sits in the log (file store: byte offset and line), to start the tail there. */
export interface SnapshotHint {
  readonly offset: number;
  readonly line: number;
}

export interface SnapshotInfo {
  readonly stream: string;
  readonly pos: number;
  /** Where it is, for messages (a file name, a table row). */
  readonly name: string;
}

/** A snapshot open for positional reads (synchronous: a map reads its part at its first use, inside a query). */
export interface SnapshotFile {
  /** Its size when opened. */
  readonly size: number;
  /** Reads up to `into.length` bytes at byte `position`; returns how many (0 at the end). */
  read(into: Uint8Array, position: number): number;
  close(): void;
}

export interface SnapshotStore {
  /** Where the snapshots are kept (for messages and `isogroup snapshot`). */
  readonly where: string;
  /** Snapshots of a stream, ascending by position. */
  list(stream: string): Promise<SnapshotInfo[]>;
  /** The first `bytes` bytes of a snapshot (its header), or all of it when shorter. */
  peek(info: SnapshotInfo, bytes: number): Promise<Buffer>;
  read(info: SnapshotInfo): Promise<Buffer>;
  /**
   * The snapshot open for reads in parts (a store without it is read whole). Reads see the bytes it
   * had when opened unless it is changed in place (writes replace a snapshot, they never edit one).
   */
  open?(info: SnapshotInfo): Promise<SnapshotFile>;
  /** Stores a snapshot atomically: a reader sees the old one, the new one, or none, never half of one. */
  write(stream: string, pos: number, bytes: Buffer): Promise<SnapshotInfo>;
  remove(info: SnapshotInfo): Promise<void>;
}

/** Snapshots of the memory store (and of tests). */
export const createMemorySnapshots = (): SnapshotStore => {
  const all = new Map<string, Map<number, Buffer>>();
  const info = (stream: string, pos: number): SnapshotInfo => ({ stream, pos, name: `memory:${stream}@${pos}` });
  const get = (i: SnapshotInfo): Buffer => {
    const b = all.get(i.stream)?.get(i.pos);
    if (!b) throw Object.assign(new Error(`${i.name}: no such snapshot`), { code: 'ENOENT' });
    return b;
  };
  return {
    where: 'memory',
    list: async (stream) => [...(all.get(stream)?.keys() ?? [])].sort((a, b) => a - b).map((p) => info(stream, p)),
    peek: async (i, bytes) => get(i).subarray(0, bytes),
    read: async (i) => get(i),
    open: async (i) => {
      const b = get(i);
      return { size: b.length, read: (into, position) => b.copy(into, 0, position, Math.min(b.length, position + into.length)), close: () => undefined };
    },
    write: async (stream, pos, bytes) => {
      let m = all.get(stream);
      if (!m) all.set(stream, (m = new Map()));
      m.set(pos, Buffer.from(bytes));
      return info(stream, pos);
    },
    remove: async (i) => void all.get(i.stream)?.delete(i.pos),
  };
};

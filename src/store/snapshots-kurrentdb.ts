/**
 * Snapshots of the KurrentDB store, kept in KurrentDB itself, in streams outside `host-*` (so the
 * log's $all reads and subscriptions never see them):
 *
 *   isogroup-snapshots-<stream>              the index: SnapshotStored {pos, chunks, count, bytes}
 *                                            and SnapshotRemoved {pos, chunks} events (JSON)
 *   isogroup-snapshot-<stream>-<pos>-<tag>   one snapshot's bytes as binary SnapshotChunk events
 *
 * A server refuses appends over its `MaxAppendSize` (1 MiB by default), so the bytes travel in
 * chunks of at most 512 KiB, one append each, into a stream of their own that no reader looks at
 * until the index names it: the index event is written last, in one append, so a reader sees the
 * old snapshot, the new one, or none — never half of one (the store contract). The index folds
 * to the newest stored entry per position; a removal is recorded in the index first, then the
 * chunk stream is deleted. A chunk stream that has gone missing, or whose length is not the one
 * the index recorded, is an error the reader turns into "not used" and a replay (restore.ts);
 * the snapshot's own header and checksum then guard the bytes themselves.
 */
import { randomBytes } from 'node:crypto';
import type { KurrentDBClient } from '@kurrent/kurrentdb-client';
import type * as Kurrent from '@kurrent/kurrentdb-client';
import type { SnapshotInfo, SnapshotStore } from './snapshots.js';

/** What the snapshots need of the client library (a test passes a stand-in). */
export type KurrentSnapshotLib = Pick<typeof Kurrent, 'binaryEvent' | 'jsonEvent' | 'StreamNotFoundError'>;
export type KurrentSnapshotClient = Pick<KurrentDBClient, 'appendToStream' | 'readStream' | 'deleteStream'>;

/** Bytes per chunk event: well under the server's default 1 MiB append limit with the envelope. */
export const SNAPSHOT_CHUNK_BYTES = 512 * 1024;

export const snapshotIndexStream = (stream: string): string => `isogroup-snapshots-${stream}`;

interface Stored {
  readonly pos: number;
  readonly chunks: string;
  readonly count: number;
  readonly bytes: number;
}

const missing = (name: string, why: string): Error => Object.assign(new Error(`${name}: ${why}`), { code: 'ENOENT' });

const dataOf = (event: { data: unknown }): Record<string, unknown> => {
  const d = event.data;
  return (d instanceof Uint8Array ? JSON.parse(Buffer.from(d).toString('utf8')) : d) as Record<string, unknown>;
};

export const createKurrentSnapshots = (client: KurrentSnapshotClient, lib: KurrentSnapshotLib): SnapshotStore => {
  /** Every resolved event of a stream, forwards; a missing stream is empty. */
  const readAll = async function* (stream: string): AsyncGenerator<{ type: string; data: unknown }> {
    try {
      for await (const resolved of client.readStream(stream, { fromRevision: 'start', direction: 'forwards' })) {
        if (resolved.event) yield resolved.event as { type: string; data: unknown };
      }
    } catch (error) {
      if (error instanceof lib.StreamNotFoundError) return;
      throw error;
    }
  };

  /** The index folded: per position the newest stored snapshot not removed since. */
  const index = async (stream: string): Promise<Map<number, Stored>> => {
    const live = new Map<number, Stored>();
    for await (const e of readAll(snapshotIndexStream(stream))) {
      const d = dataOf(e);
      if (e.type === 'SnapshotStored') live.set(Number(d.pos), { pos: Number(d.pos), chunks: String(d.chunks), count: Number(d.count), bytes: Number(d.bytes) });
      else if (e.type === 'SnapshotRemoved' && live.get(Number(d.pos))?.chunks === d.chunks) live.delete(Number(d.pos));
    }
    return live;
  };

  const find = async (info: SnapshotInfo): Promise<Stored> => {
    const s = (await index(info.stream)).get(info.pos);
    if (!s || s.chunks !== info.name) throw missing(info.name, 'no such snapshot');
    return s;
  };

  /** The chunks of a snapshot in order, stopping once `limit` bytes are in hand. */
  const chunks = async (s: Stored, limit: number): Promise<Buffer> => {
    const parts: Buffer[] = [];
    let have = 0;
    for await (const e of readAll(s.chunks)) {
      const b = Buffer.from(e.data as Uint8Array);
      parts.push(b);
      have += b.length;
      if (have >= limit) break;
    }
    if (parts.length === 0) throw missing(s.chunks, 'its chunks are gone');
    const all = Buffer.concat(parts, have);
    if (limit >= s.bytes && all.length !== s.bytes) throw missing(s.chunks, `holds ${all.length} bytes, the index recorded ${s.bytes}`);
    return all;
  };

  return {
    where: 'KurrentDB streams isogroup-snapshots-*',
    list: async (stream) =>
      [...(await index(stream)).values()].sort((a, b) => a.pos - b.pos).map((s) => ({ stream, pos: s.pos, name: s.chunks })),
    peek: async (info, bytes) => (await chunks(await find(info), bytes)).subarray(0, bytes),
    read: async (info) => {
      const s = await find(info);
      return chunks(s, s.bytes);
    },
    write: async (stream, pos, bytes) => {
      const name = `isogroup-snapshot-${stream}-${String(pos).padStart(12, '0')}-${randomBytes(4).toString('hex')}`;
      let count = 0;
      for (let at = 0; at < bytes.length || count === 0; at += SNAPSHOT_CHUNK_BYTES, count++) {
        const data = bytes.subarray(at, at + SNAPSHOT_CHUNK_BYTES);
        await client.appendToStream(name, lib.binaryEvent({ type: 'SnapshotChunk', data }), { streamState: count === 0 ? 'no_stream' : BigInt(count - 1) });
      }
      const before = (await index(stream)).get(pos);
      await client.appendToStream(snapshotIndexStream(stream), lib.jsonEvent({ type: 'SnapshotStored', data: { pos, chunks: name, count, bytes: bytes.length } }));
      // The one it replaced at the same position is no longer named by the index.
      if (before) await client.deleteStream(before.chunks).catch(() => undefined);
      return { stream, pos, name };
    },
    remove: async (info) => {
      await client.appendToStream(snapshotIndexStream(info.stream), lib.jsonEvent({ type: 'SnapshotRemoved', data: { pos: info.pos, chunks: info.name } }));
      await client.deleteStream(info.name).catch(() => undefined);
    },
  };
};

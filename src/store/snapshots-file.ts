/**
 * Snapshots of the file store: a folder beside the log, `<log>.snapshots/`, with one file per
 * stream and position, `<stream>.<position, 12 digits>.snap`. Written atomically and durably
 * (replaceFileDurably: a file aside, fdatasync, rename into place, fsync of the folder).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { SnapshotInfo, SnapshotStore } from './snapshots.js';
import { mkdirDurable, replaceFileDurably } from './file-fs.js';

const NAME = /^(.+)\.(\d{12})\.snap$/;

/** The snapshot folder of a log file. */
export const snapshotDir = (logFile: string): string => join(dirname(logFile), `${basename(logFile)}.snapshots`);

export const createFileSnapshots = (logFile: string): SnapshotStore => {
  const dir = snapshotDir(logFile);
  const fileOf = (stream: string, pos: number): string => join(dir, `${encodeURIComponent(stream)}.${String(pos).padStart(12, '0')}.snap`);
  return {
    where: dir,
    list: async (stream) => {
      let names: string[];
      try {
        names = await fs.readdir(dir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
      const out: SnapshotInfo[] = [];
      for (const n of names) {
        const m = NAME.exec(n);
        if (m && decodeURIComponent(m[1]!) === stream) out.push({ stream, pos: Number(m[2]), name: join(dir, n) });
      }
      return out.sort((a, b) => a.pos - b.pos);
    },
    peek: async (info, bytes) => {
      const h = await fs.open(info.name, 'r');
      try {
        const buf = Buffer.alloc(bytes);
        const { bytesRead } = await h.read(buf, 0, bytes, 0);
        return buf.subarray(0, bytesRead);
      } finally {
        await h.close();
      }
    },
    read: (info) => fs.readFile(info.name),
    open: async (info) => {
      // Synchronous reads on a descriptor: a map reads its part at its first use, inside a query.
      const fd = openSync(info.name, 'r');
      let open = true;
      try {
        const { size } = fstatSync(fd);
        return {
          size,
          read: (into, position) => readSync(fd, into, 0, into.length, position),
          close: () => {
            if (open) closeSync(fd);
            open = false;
          },
        };
      } catch (error) {
        closeSync(fd);
        throw error;
      }
    },
    write: async (stream, pos, bytes) => {
      await mkdirDurable(dir);
      const target = fileOf(stream, pos);
      await replaceFileDurably(target, bytes);
      return { stream, pos, name: target };
    },
    remove: async (info) => {
      await fs.unlink(info.name).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    },
  };
};

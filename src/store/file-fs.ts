/**
 * The file-system seam of the file store: the subset of `node:fs/promises` it uses. Tests inject a
 * faulty implementation (EIO, ENOSPC, short writes) to prove that a failed append leaves the file
 * and the index exactly as they were, and a power-cut simulation that keeps only what was fsynced.
 *
 * Power loss: `fdatasync` makes a file's bytes durable, not its name. A file created (or renamed,
 * linked, removed) is only there after a cut once its directory has been fsynced too, so every
 * creation path calls `syncDir` (or one of the helpers below) before anything that depends on the
 * new name is acknowledged.
 */
import * as nodeFs from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export interface StoreFileHandle {
  write(buffer: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }>;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

export interface StoreFs {
  open(path: string, flags: string): Promise<StoreFileHandle>;
  readFile(path: string): Promise<Buffer>;
  /** Resolves to the first directory it created (undefined when all existed), like node's. */
  mkdir(path: string, options: { recursive: true }): Promise<unknown>;
  unlink(path: string): Promise<void>;
  /** Hard link (the lock is written aside and linked into place, so it never exists half-written). */
  link(existing: string, path: string): Promise<void>;
  /** Atomic replace of `path` by `existing` (snapshots and other whole files written aside). */
  rename(existing: string, path: string): Promise<void>;
  /** fsync of a directory: makes the names created, renamed or removed in it durable. */
  syncDir(path: string): Promise<void>;
}

const errno = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code;

/**
 * fsync of the directory `dir` on the real file system. Where a directory cannot be opened or
 * fsynced (Windows: EISDIR/EPERM; some network file systems: EINVAL) there is nothing better to do,
 * and the call is a no-op; any other failure (EIO) is thrown: the names may not be durable.
 */
export const fsyncDir = async (dir: string): Promise<void> => {
  let handle: nodeFs.FileHandle;
  try {
    handle = await nodeFs.open(dir, 'r');
  } catch (error) {
    if (['EISDIR', 'EPERM', 'EACCES'].includes(errno(error) ?? '')) return;
    throw error;
  }
  try {
    await handle.sync();
  } catch (error) {
    if (!['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM', 'EBADF'].includes(errno(error) ?? '')) throw error;
  } finally {
    await handle.close().catch(() => undefined);
  }
};

/** The real file system. */
export const realFs: StoreFs = {
  open: (path, flags) => nodeFs.open(path, flags),
  readFile: (path) => nodeFs.readFile(path),
  mkdir: (path, options) => nodeFs.mkdir(path, options),
  unlink: (path) => nodeFs.unlink(path),
  link: (existing, path) => nodeFs.link(existing, path),
  rename: (existing, path) => nodeFs.rename(existing, path),
  syncDir: (path) => fsyncDir(path),
};

/** Makes the name of `file` durable: fsyncs the directory that holds it. */
export const syncName = (file: string, fs: StoreFs = realFs): Promise<void> => fs.syncDir(dirname(resolve(file)));

/**
 * `mkdir -p dir`, durably: every directory it had to create is fsynced into its parent, so the
 * path survives a power cut once the caller has also synced what it creates inside `dir`.
 */
export const mkdirDurable = async (dir: string, fs: StoreFs = realFs): Promise<void> => {
  const target = resolve(dir);
  const first = await fs.mkdir(target, { recursive: true });
  if (typeof first !== 'string') return;
  // Created: `first` … `target`. Each one's name lives in its parent.
  const chain: string[] = [];
  for (let d = target; ; d = dirname(d)) {
    chain.push(dirname(d));
    if (d === resolve(first) || dirname(d) === d) break;
  }
  for (const d of chain.reverse()) await fs.syncDir(d);
};

/** Writes all of `bytes` through `handle` (a short write is continued; a write of nothing is EIO). */
export const writeAll = async (handle: Pick<StoreFileHandle, 'write'>, bytes: Uint8Array): Promise<void> => {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done);
    if (bytesWritten <= 0) throw Object.assign(new Error('write wrote nothing'), { code: 'EIO' });
    done += bytesWritten;
  }
};

/**
 * Writes `bytes` as the whole new content of `path`, so that after a crash or power cut `path`
 * holds either its old content or all of the new one, never a mix: write a private file aside,
 * fdatasync it, rename it over `path`, fsync the directory. For snapshots, archives, exports.
 */
export const replaceFileDurably = async (path: string, bytes: Uint8Array, fs: StoreFs = realFs): Promise<void> => {
  const target = resolve(path);
  const aside = `${target}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`;
  const handle = await fs.open(aside, 'wx');
  try {
    await writeAll(handle, bytes);
    await handle.datasync();
    await handle.close();
    await fs.rename(aside, target);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.unlink(aside).catch(() => undefined);
    throw error;
  }
  await fs.syncDir(dirname(target));
};

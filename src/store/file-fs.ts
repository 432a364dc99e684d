/**
 * The file-system seam of the file store: the subset of `node:fs/promises` it uses. Tests inject a
 * faulty implementation (EIO, ENOSPC, short writes) to prove that a failed append leaves the file
 * and the index exactly as they were.
 */
import * as nodeFs from 'node:fs/promises';

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
  mkdir(path: string, options: { recursive: true }): Promise<unknown>;
  unlink(path: string): Promise<void>;
  /** Hard link (the lock is written aside and linked into place, so it never exists half-written). */
  link(existing: string, path: string): Promise<void>;
}

/** The real file system. */
export const realFs: StoreFs = {
  open: (path, flags) => nodeFs.open(path, flags),
  readFile: (path) => nodeFs.readFile(path),
  mkdir: (path, options) => nodeFs.mkdir(path, options),
  unlink: (path) => nodeFs.unlink(path),
  link: (existing, path) => nodeFs.link(existing, path),
};

/**
 * A simulated file system for power-cut trials, behind the file store's fs seam (`StoreFs`).
 *
 * It keeps two versions of everything: what a running process sees (the page cache) and what is
 * on the platter. A file's bytes reach the platter only through `datasync` on one of its handles;
 * a directory's entries (created, linked, renamed, removed names) only through `syncDir` on that
 * directory — separately, as on ext4/xfs, so a file whose bytes were fsynced but whose directory
 * was not is gone after a cut. `cut()` returns the file system as it comes back after the power
 * cut; `strict` keeps only what was fsynced, otherwise (the disk wrote some of its cache back on
 * its own before the cut) each file also keeps a random part of its unsynced appended bytes and
 * each directory randomly its synced or its cached entries.
 *
 * The power goes at operation `cutAt`: that operation and every later one never completes (the
 * process is dead), and `onCut` fires so the test stops waiting for it.
 */
import type { StoreFileHandle, StoreFs } from '../../src/store/file-fs.js';

interface Inode {
  data: Buffer;
  durable: Buffer;
}
interface Dir {
  live: Map<string, Entry>;
  durable: Map<string, Entry>;
}
type Entry = { readonly kind: 'file'; readonly inode: Inode } | { readonly kind: 'dir'; readonly dir: Dir };

const fsError = (code: string, syscall: string, path: string): Error =>
  Object.assign(new Error(`${code}: simulated, ${syscall} '${path}'`), { code, syscall, path });

const parts = (path: string): string[] => path.split('/').filter((p) => p !== '' && p !== '.');

export interface SimFs extends StoreFs {
  /** Operations so far. */
  readonly ops: () => number;
  /** Arms the power cut at operation number `n` (Infinity: never). */
  armCut(n: number, onCut: () => void): void;
  /** The file system after the cut (a fresh SimFs, nothing armed). */
  cut(mode: { strict: boolean; rnd: () => number }): SimFs;
  /** Renames a top-level directory (each generation of a trial gets its own path). */
  move(from: string, to: string): void;
  /** What a process sees now: file bytes by path (for the test's own checks). */
  peek(path: string): Buffer | undefined;
}

export const createSimFs = (root: Dir = { live: new Map(), durable: new Map() }): SimFs => {
  let count = 0;
  let cutAt = Infinity;
  let onCut: (() => void) | undefined;
  /** Every operation passes here first: at the cut it never returns. */
  const step = async (): Promise<void> => {
    count += 1;
    if (count >= cutAt) {
      const fire = onCut;
      onCut = undefined;
      fire?.();
      await new Promise<never>(() => undefined);
    }
  };

  const dirOf = (names: readonly string[], path: string): Dir => {
    let d = root;
    for (const n of names) {
      const e = d.live.get(n);
      if (!e) throw fsError('ENOENT', 'open', path);
      if (e.kind !== 'dir') throw fsError('ENOTDIR', 'open', path);
      d = e.dir;
    }
    return d;
  };
  const split = (path: string): { dir: Dir; name: string } => {
    const ps = parts(path);
    const name = ps.pop();
    if (name === undefined) throw fsError('EISDIR', 'open', path);
    return { dir: dirOf(ps, path), name };
  };
  const fileAt = (path: string): Inode => {
    const { dir, name } = split(path);
    const e = dir.live.get(name);
    if (!e) throw fsError('ENOENT', 'open', path);
    if (e.kind !== 'file') throw fsError('EISDIR', 'open', path);
    return e.inode;
  };

  const handleOf = (inode: Inode, append: boolean): StoreFileHandle => {
    let position = 0;
    return {
      write: async (buffer, offset, length) => {
        await step();
        const bytes = Buffer.from(buffer.subarray(offset, offset + length));
        const at = append ? inode.data.length : position;
        const before = inode.data.subarray(0, Math.min(at, inode.data.length));
        const pad = Buffer.alloc(Math.max(0, at - inode.data.length));
        const after = inode.data.subarray(Math.min(inode.data.length, at + bytes.length));
        inode.data = Buffer.concat([before, pad, bytes, after]);
        position = at + bytes.length;
        return { bytesWritten: bytes.length };
      },
      read: async (buffer, offset, length, pos) => {
        await step();
        const got = inode.data.subarray(pos, pos + length);
        buffer.set(got, offset);
        return { bytesRead: got.length };
      },
      datasync: async () => {
        await step();
        inode.durable = Buffer.from(inode.data);
      },
      truncate: async (length) => {
        await step();
        inode.data = length <= inode.data.length ? Buffer.from(inode.data.subarray(0, length)) : Buffer.concat([inode.data, Buffer.alloc(length - inode.data.length)]);
      },
      stat: async () => {
        await step();
        return { size: inode.data.length };
      },
      close: async () => {
        await step();
      },
    };
  };

  const fs: SimFs = {
    ops: () => count,
    armCut: (n, f) => {
      cutAt = n;
      onCut = f;
    },
    open: async (path, flags) => {
      await step();
      const { dir, name } = split(path);
      const e = dir.live.get(name);
      if (e?.kind === 'dir') throw fsError('EISDIR', 'open', path);
      if (flags === 'r') {
        if (!e) throw fsError('ENOENT', 'open', path);
        return handleOf(e.inode, false);
      }
      if (flags.includes('x') && e) throw fsError('EEXIST', 'open', path);
      let inode = e?.inode;
      if (!inode) {
        inode = { data: Buffer.alloc(0), durable: Buffer.alloc(0) };
        dir.live.set(name, { kind: 'file', inode });
      } else if (flags.startsWith('w')) inode.data = Buffer.alloc(0);
      return handleOf(inode, flags.startsWith('a'));
    },
    readFile: async (path) => {
      await step();
      return Buffer.from(fileAt(path).data);
    },
    mkdir: async (path) => {
      await step();
      let d = root;
      let first: string | undefined;
      let at = '';
      for (const n of parts(path)) {
        at += `/${n}`;
        const e = d.live.get(n);
        if (e?.kind === 'file') throw fsError('ENOTDIR', 'mkdir', path);
        if (e) {
          d = e.dir;
          continue;
        }
        const dir: Dir = { live: new Map(), durable: new Map() };
        d.live.set(n, { kind: 'dir', dir });
        first ??= at;
        d = dir;
      }
      return first;
    },
    unlink: async (path) => {
      await step();
      const { dir, name } = split(path);
      if (dir.live.get(name)?.kind !== 'file') throw fsError('ENOENT', 'unlink', path);
      dir.live.delete(name);
    },
    link: async (existing, path) => {
      await step();
      const inode = fileAt(existing);
      const { dir, name } = split(path);
      if (dir.live.has(name)) throw fsError('EEXIST', 'link', path);
      dir.live.set(name, { kind: 'file', inode });
    },
    rename: async (existing, path) => {
      await step();
      const from = split(existing);
      const e = from.dir.live.get(from.name);
      if (!e) throw fsError('ENOENT', 'rename', existing);
      const to = split(path);
      from.dir.live.delete(from.name);
      to.dir.live.set(to.name, e);
    },
    syncDir: async (path) => {
      await step();
      const d = dirOf(parts(path), path);
      d.durable = new Map(d.live);
    },
    cut: ({ strict, rnd }) => {
      const inodes = new Map<Inode, Inode>();
      const fileAfter = (inode: Inode): Inode => {
        let out = inodes.get(inode);
        if (out) return out;
        let bytes = inode.durable;
        const grown = inode.data.length > bytes.length && inode.data.subarray(0, bytes.length).equals(bytes);
        if (!strict && grown && rnd() < 0.5) bytes = inode.data.subarray(0, bytes.length + Math.floor(rnd() * (inode.data.length - bytes.length + 1)));
        out = { data: Buffer.from(bytes), durable: Buffer.from(bytes) };
        inodes.set(inode, out);
        return out;
      };
      const dirAfter = (d: Dir): Dir => {
        const entries = !strict && rnd() < 0.3 ? d.live : d.durable;
        const m = new Map<string, Entry>();
        for (const [n, e] of entries) m.set(n, e.kind === 'file' ? { kind: 'file', inode: fileAfter(e.inode) } : { kind: 'dir', dir: dirAfter(e.dir) });
        return { live: m, durable: new Map(m) };
      };
      return createSimFs(dirAfter(root));
    },
    move: (from, to) => {
      const e = root.live.get(from);
      if (!e) return;
      root.live.delete(from);
      root.durable.delete(from);
      root.live.set(to, e);
      root.durable.set(to, e);
    },
    peek: (path) => {
      try {
        return Buffer.from(fileAt(path).data);
      } catch {
        return undefined;
      }
    },
  };
  return fs;
};

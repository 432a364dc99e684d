/**
 * One writer at a time for the file store: `<log>.lock`, created with O_EXCL, holding
 * `{"pid":N,"host":"…","since":"…"}`. A lock whose pid is gone (on this host) is stale and taken
 * over; a lock from another host is never assumed stale, since its pid means nothing here.
 */
import { randomBytes } from 'node:crypto';
import { hostname, uptime } from 'node:os';
import { writeAll, type StoreFs } from './file-fs.js';
import { StoreError } from './types.js';
import { sleep } from './internal.js';

export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

export interface LockOptions {
  /** Poll until the lock is free instead of failing at once; `timeoutMs` bounds the wait. */
  readonly wait?: boolean | { readonly timeoutMs?: number; readonly intervalMs?: number };
  readonly warn: (message: string) => void;
}

export interface FileLock {
  readonly path: string;
  readonly holder: LockHolder;
  release(): Promise<void>;
}

/**
 * Locks held by this process. A lock naming our own pid that is not in here was left by an earlier
 * process that had the same pid (containers restart with the same small pids): it is stale.
 */
const heldHere = new Set<string>();

const errno = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code;

/** Whether `pid` is a live process here. EPERM means it exists but belongs to someone else. */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errno(error) !== 'ESRCH';
  }
};

/**
 * Whether a lock was written before this machine last booted (a power cut, a reboot): its holder is
 * gone whatever process its pid names now (a second of slack for clock and uptime rounding).
 */
const beforeBoot = (since: string): boolean => Date.parse(since) < Date.now() - uptime() * 1000 - 1000;

/** Link errors of file systems without hard links: there the lock is created in place. */
const NO_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

const lockError = (path: string, error: unknown): StoreError =>
  new StoreError(`cannot create lock file ${path}: ${(error as Error).message}`, errno(error) ?? 'ELOCK');

/** Writes all of `content` to a new file `path` (O_EXCL); false if it exists. On failure the file is removed. */
const writeNew = async (fs: StoreFs, path: string, content: string): Promise<boolean> => {
  let handle;
  try {
    handle = await fs.open(path, 'wx');
  } catch (error) {
    if (errno(error) === 'EEXIST') return false;
    throw lockError(path, error);
  }
  try {
    await writeAll(handle, Buffer.from(content));
    // Durable before it is linked into place: after a power cut a lock is absent or whole, never empty.
    await handle.datasync();
    await handle.close();
    return true;
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.unlink(path).catch(() => undefined);
    throw lockError(path, error);
  }
};

/**
 * Creates `path` exclusively with `content`; false if it already exists. The content is written to
 * a private file first and hard-linked into place, so `path` never exists empty or half-written: a
 * process killed half-way leaves at most its private `.tmp` file, and a failed write (ENOSPC)
 * leaves nothing, instead of an unreadable lock that no later process may take over.
 */
const createExclusive = async (fs: StoreFs, path: string, content: string): Promise<boolean> => {
  const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeNew(fs, aside, content);
  try {
    await fs.link(aside, path);
    return true;
  } catch (error) {
    if (errno(error) === 'EEXIST') return false;
    if (NO_LINKS.has(errno(error) ?? '')) return writeNew(fs, path, content);
    throw lockError(path, error);
  } finally {
    await fs.unlink(aside).catch(() => undefined);
  }
};

const readText = async (fs: StoreFs, path: string): Promise<string | undefined> => {
  try {
    return (await fs.readFile(path)).toString('utf8');
  } catch (error) {
    if (errno(error) === 'ENOENT') return undefined;
    throw error;
  }
};

const parseHolder = (text: string): LockHolder | undefined => {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.since === 'string') {
      return { pid: v.pid, host: v.host, since: v.since };
    }
  } catch {
    // an empty or half-written lock file: its writer is between open and write, or died there
  }
  return undefined;
};

const unlinkQuietly = async (fs: StoreFs, path: string): Promise<void> => {
  try {
    await fs.unlink(path);
  } catch (error) {
    if (errno(error) !== 'ENOENT') throw error;
  }
};

/**
 * Removes a stale lock. A separate O_EXCL guard file makes the check-and-remove atomic between
 * processes, so two processes that both saw the stale lock cannot remove each other's fresh one.
 */
const removeStale = async (fs: StoreFs, path: string, staleText: string, warn: (m: string) => void): Promise<void> => {
  const guard = `${path}.takeover`;
  const me = JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() });
  if (!(await createExclusive(fs, guard, me))) {
    const text = await readText(fs, guard);
    const other = parseHolder(text ?? '');
    if (other && !isAlive(other.pid)) await unlinkQuietly(fs, guard); // a takeover that died half-way
    else if (text !== undefined && !other) {
      // Not written by this version (its guard is never empty): without a pid there is no telling, and
      // retrying would spin forever.
      throw new StoreError(`${guard} is unreadable; remove it and ${path} if no isogroup process is running`, 'ELOCKED');
    } else await sleep(10); // another process is taking over right now
    return;
  }
  try {
    if ((await readText(fs, path)) === staleText) {
      await unlinkQuietly(fs, path);
      warn(`took over stale lock ${path} (${staleText.trim()}: that process is gone)`);
    }
  } finally {
    await unlinkQuietly(fs, guard);
  }
};

export const acquireLock = async (fs: StoreFs, path: string, options: LockOptions): Promise<FileLock> => {
  const wait = options.wait === true ? {} : options.wait || undefined;
  const interval = wait?.intervalMs ?? 100;
  const deadline = wait?.timeoutMs === undefined ? Infinity : Date.now() + wait.timeoutMs;
  const holder: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const content = `${JSON.stringify(holder)}\n`;

  while (true) {
    if (await createExclusive(fs, path, content)) {
      heldHere.add(path);
      return {
        path,
        holder,
        release: async () => {
          heldHere.delete(path);
          // Only remove the lock if it is still ours (it is, unless someone removed it by hand).
          if ((await readText(fs, path)) === content) await unlinkQuietly(fs, path);
          else options.warn(`lock ${path} was no longer ours at close; left it alone`);
        },
      };
    }
    const text = await readText(fs, path);
    if (text === undefined) continue; // released between our attempt and our read
    const other = parseHolder(text);
    const ours = other?.pid === process.pid && heldHere.has(path);
    if (other && other.host === holder.host && !ours && (other.pid === process.pid || !isAlive(other.pid) || beforeBoot(other.since))) {
      await removeStale(fs, path, text, options.warn);
      continue;
    }
    const who = other
      ? `pid ${other.pid} on ${other.host} since ${other.since}`
      : `an unreadable lock (remove ${path} if no isogroup process is running)`;
    if (!wait) throw new StoreError(`${path} is held by ${who}: another process is writing this log`, 'ELOCKED');
    if (Date.now() >= deadline) {
      throw new StoreError(`gave up waiting for ${path}, still held by ${who}`, 'ELOCKED');
    }
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
  }
};

/**
 * The CLI's window on the world, injectable so tests run commands in-process: output streams,
 * input, environment, and whether we are on a terminal (colours, progress bars).
 */
import type { Readable } from 'node:stream';

export interface Out {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  /** True once the reader has gone away (`isogroup export | head -1`): later writes are dropped. */
  readonly closed?: boolean;
}

export interface Io {
  readonly stdout: Out;
  readonly stderr: Out;
  readonly stdin: Readable;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

/**
 * A process stream whose reader may leave early. A closed pipe (EPIPE) is the reader saying it has
 * seen enough, not a failure: output ends quietly and the command finishes with its own exit code,
 * instead of Node's unhandled 'error' event and stack trace.
 */
export const pipeOut = (stream: NodeJS.WriteStream): Out => {
  let closed = false;
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
    closed = true;
  });
  return {
    write: (chunk: string): boolean => !closed && stream.write(chunk),
    get isTTY(): boolean {
      return stream.isTTY === true;
    },
    get closed(): boolean {
      return closed;
    },
  };
};

export const nodeIo = (): Io => ({ stdout: pipeOut(process.stdout), stderr: pipeOut(process.stderr), stdin: process.stdin, env: process.env, cwd: process.cwd() });

/** A user-facing error: printed as one line (no stack) and mapped to an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = 'CliError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

const ESC = '\u001b[';
export interface Paint {
  readonly bold: (s: string) => string;
  readonly dim: (s: string) => string;
  readonly red: (s: string) => string;
  readonly green: (s: string) => string;
  readonly yellow: (s: string) => string;
  readonly cyan: (s: string) => string;
}

/**
 * Colours only on a terminal, and never when NO_COLOR is set to something (no-color.org: an empty
 * NO_COLOR does not count). FORCE_COLOR (anything but empty, 0 or false) colours a pipe too, unless
 * NO_COLOR says otherwise.
 */
export const colourOn = (out: Out, env: Io['env']): boolean => {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '' && force !== '0' && force !== 'false') return true;
  return out.isTTY === true && env.TERM !== 'dumb';
};

export const paint = (out: Out, env: Io['env']): Paint => {
  const on = colourOn(out, env);
  const c = (code: string) => (s: string) => (on ? `${ESC}${code}m${s}${ESC}0m` : s);
  return { bold: c('1'), dim: c('2'), red: c('31'), green: c('32'), yellow: c('33'), cyan: c('36') };
};

/** Aligned columns for people. */
export const table = (rows: readonly (readonly string[])[], header?: readonly string[]): string => {
  const all = header ? [header, ...rows] : rows;
  const widths: number[] = [];
  for (const r of all) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell))));
  const line = (r: readonly string[]): string =>
    r.map((cell, i) => (i === r.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - visibleLength(cell)))).join('  ').trimEnd();
  const out = all.map(line);
  if (header) out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n') + '\n';
};

// eslint-disable-next-line no-control-regex
const visibleLength = (s: string): number => s.replace(/\u001b\[[0-9;]*m/g, '').length;

/** A progress bar on a terminal (stderr); nothing when piped. */
export const progressBar = (err: Out, label: string): ((done: number, total: number) => void) & { end(): void } => {
  let last = 0;
  let shown = false;
  const fn = (done: number, total: number): void => {
    if (!err.isTTY || total < 20_000) return;
    const now = Date.now();
    if (now - last < 100 && done < total) return;
    last = now;
    shown = true;
    const width = 30;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    err.write(`\r${label} [${bar}] ${done.toLocaleString('en')}/${total.toLocaleString('en')}`);
  };
  return Object.assign(fn, {
    end: () => {
      if (shown) err.write('\r\u001b[K');
    },
  });
};

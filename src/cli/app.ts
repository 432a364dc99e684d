/** What a command module gets from the program: the action wrapper and the process's streams. */
import type { CliContext } from './context.js';
import type { Io } from './io.js';

export interface App {
  /** Wraps a command action: context from the global flags, exit code, errors, cleanup. */
  action<A extends unknown[]>(fn: (ctx: CliContext, ...args: A) => Promise<number | void>): (...args: A) => Promise<void>;
  readonly io: Io;
}

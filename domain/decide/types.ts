/** The decider's contract: what a command brings besides its content, and what deciding returns. */
import type { Command } from '../commands.js';
import type { DomainEvent } from '../events.js';
import type { Status } from '../personality/status.js';
import type { State } from '../state.js';

/** What the caller knows about a command besides its content. */
export interface CommandMeta {
  /** The time the events will carry (ISO 8601). */
  readonly at: string;
}

export type CommandWithMeta = Command & { readonly meta: CommandMeta };

export type Decision =
  | { readonly ok: true; readonly command: Command; readonly events: readonly DomainEvent[]; readonly state: State }
  | {
      readonly ok: false;
      /** null: the input did not parse. */
      readonly command: Command | null;
      readonly status: Status;
      readonly message: string;
      /** Events that still happened (only the non-atomic linux unmap has any). */
      readonly events: readonly DomainEvent[];
      readonly state: State;
    };

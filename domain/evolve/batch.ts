/**
 * The reducer's configuration and the per-batch context every handler receives.
 *
 * Freezing every produced state costs ~20% of replay, so it is off unless the host program turns
 * it on (`configureReducer({ freeze: true })`): tests and ISOGROUP_FREEZE=1 do, so an accidental
 * mutation of a published state fails loudly. domain/ reads no environment itself.
 */
import { Immer, enableMapSet, freeze } from 'immer';
import { IntervalMap, type Edit } from '../intervalMap.js';

enableMapSet();

export interface ReducerConfig {
  /** Deep-freeze every produced state (default false). The grouping rule set is a fact of the log (HostBooted), not configuration. */
  readonly freeze?: boolean;
}

/** What one `evolveAll` call works with; handlers get it explicitly, nothing is module-level. */
export interface Batch {
  /** The transient-edit token: interval-map nodes this batch created change in place. */
  readonly edit: Edit;
  readonly freeze: boolean;
}

/** The reducer's immer instance (its autoFreeze follows the configuration). */
export const reducerImmer = new Immer({ autoFreeze: false });

let current: { freeze: boolean } = { freeze: false };

/** Sets the reducer's options; those not given keep their value. Applies to later batches. */
export const configureReducer = (config: ReducerConfig): void => {
  current = { freeze: config.freeze ?? current.freeze };
  reducerImmer.setAutoFreeze(current.freeze);
};

/** A fresh context for one batch. */
export const newBatch = (): Batch => ({ edit: IntervalMap.edit(), freeze: current.freeze });

/** Freezes `x` when the batch freezes states (the plain path's equivalent of immer's autoFreeze). */
export const fz = <T>(b: Batch, x: T): T => (b.freeze ? freeze(x) : x);

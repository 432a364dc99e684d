/**
 * Global checkpoints of the stores that keep one ordered log (memory, file): the 1-based global
 * index, zero-padded so that string order is numeric order.
 */
import { StoreError } from './types.js';

export const CHECKPOINT_DIGITS = 12;

/** The checkpoint of the event at 1-based global index `n` (the line number in the file store). */
export const checkpointAt = (n: number): string => String(n).padStart(CHECKPOINT_DIGITS, '0');

/** Number of events at or before `checkpoint` (0 for none). */
export const indexOfCheckpoint = (checkpoint: string | undefined): number => {
  if (checkpoint === undefined || checkpoint === '') return 0;
  if (!/^\d{1,15}$/.test(checkpoint)) {
    throw new StoreError(`invalid checkpoint ${JSON.stringify(checkpoint)}: expected digits`, 'ECHECKPOINT');
  }
  return Number(checkpoint);
};

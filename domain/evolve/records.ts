/**
 * Record-only events: checks, refusals and faults are kept in the log (and counted) but change no
 * state; an observed fault raises (or counts) a `dma-fault` alert (fault-alerts.ts).
 */
import { raise, type PlainHandler } from './common.js';
import { countFault } from './fault-alerts.js';

/** DmaChecked and CommandRejected: only counted. */
export const recordOnly: PlainHandler<'DmaChecked' | 'CommandRejected'> = () => {};

export const faultRecorded: PlainHandler<'FaultRecorded'> = (run, d, e) => {
  if (!e.meta.observed) return;
  countFault(run, d, e);
};

/** An observed drift (follow): the live kernel differs from the model; raises a `drift` alert. */
export const driftObserved: PlainHandler<'DriftObserved'> = (run, d, e) => {
  if (!e.meta.observed) return;
  raise(run, e, 'drift', `drift (${d.what}): ${d.message}`, d.device ? { device: d.device } : {});
};

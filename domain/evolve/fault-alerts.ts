/**
 * Fault floods as bounded alerts: every observed DMA fault (FaultRecorded from the kernel) raises
 * or counts one `dma-fault` alert per (device, domain, reason, access). The first fault of a key
 * raises the alert as it always did (pos/at are that first fault); every later one replaces it in
 * place with `count`, `lastPos` and `lastAt` and a message that says so, so days of a fault storm
 * keep State.alerts the size of the set of keys, not of the log. `isogroup faults` still explains
 * every fault from the log itself; the alert is the bounded summary `check` and the audit show.
 */
import type { EventDataMap } from '../events.js';
import type { Alert } from '../state.js';
import { fz } from './batch.js';
import { raise, type EvolveEvent, type PlainRun } from './common.js';

type Fault = EventDataMap['FaultRecorded'];

/** The aggregation key of an observed fault. */
export const faultAlertKey = (d: Fault): string => `${d.device}|${d.domain ?? '-'}|${d.reason}|${d.access}`;

/** The message of a fault alert: the first fault, then how many and the last, once more than one. */
const firstMessage = (d: Fault): string => `${d.device} faulted (${d.reason}) on ${d.access === 'w' ? 'write' : 'read'} of ${d.iova}`;
const COUNTED = /; \d+ faults, the last at #\d+ \(.*\)$/;
const counted = (a: Alert, count: number, e: EvolveEvent): string => `${a.message.replace(COUNTED, '')}; ${count} faults, the last at #${e.pos} (${e.meta.at})`;

/** The alerts array with the run's replacements written in (changes `alerts`, which the caller owns). */
export const withReplaced = (alerts: Alert[], replaced: ReadonlyMap<number, Alert>): Alert[] => {
  for (const [i, a] of replaced) alerts[i] = a;
  return alerts;
};

/** Raises or counts the alert of an observed fault in a plain run. */
export const countFault = (run: PlainRun, d: Fault, e: EvolveEvent): void => {
  const key = faultAlertKey(d);
  const i = run.faults.get(key) ?? run.state.faultAlerts.get(key);
  const base = run.state.alerts.length;
  if (i === undefined) {
    run.faults.set(key, base + run.raised.length);
    raise(run, e, 'dma-fault', firstMessage(d), { device: d.device });
    return;
  }
  const old = i < base ? (run.replaced.get(i) ?? run.state.alerts[i]!) : run.raised[i - base]!;
  const count = (old.count ?? 1) + 1;
  const next = fz(run.batch, { ...old, message: counted(old, count, e), count, lastPos: e.pos, lastAt: e.meta.at });
  if (i < base) run.replaced.set(i, next);
  else run.raised[i - base] = next;
};

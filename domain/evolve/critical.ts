/** Host-critical marks (domain/critical.ts): one per role, replaced when marked again, gone when cleared. */
import type { CriticalMark } from '../critical.js';
import { deviceOf, type DraftHandler } from './common.js';

export const criticalMarked: DraftHandler<'CriticalMarked'> = (s, d, e) => {
  const dev = deviceOf(s, e, d.device);
  if (!dev) return;
  const mark: CriticalMark = { role: d.role, detail: d.detail ?? null, at: e.pos };
  const others = (dev.critical ?? []).filter((m) => m.role !== d.role);
  dev.critical = [...others, mark];
};

export const criticalCleared: DraftHandler<'CriticalCleared'> = (s, d, e) => {
  const dev = deviceOf(s, e, d.device);
  if (!dev || dev.critical === undefined) return;
  const left = dev.critical.filter((m) => m.role !== d.role);
  if (left.length > 0) dev.critical = left;
  else delete dev.critical;
};

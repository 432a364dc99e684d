/**
 * `GET /api/mmio`: peer-to-peer reach for the dashboard. With `device` (and optionally `bar`):
 * that device's BARs and every device that reaches them peer-to-peer or through a mapping; the
 * question box turns "can A write B's BAR0?" into a can-dma at the BAR's first byte with it.
 * Without: the facts, the user→kernel alerts and the routing findings.
 */
import { barText, hex, mmioFacts, mmioJson, parseBarRef, FieldError, type State } from '../../domain/index.js';
import { isolationFindings, mmioReacherJson, peerAlerts, routeJson, whoCanMmio } from '../../projections/index.js';
import { HttpError } from './http.js';
import type { Params } from './params.js';

export const mmioAnswer = (s: State, p: Params): Record<string, unknown> => {
  const spec = p.str('device');
  if (spec === undefined || spec === '') {
    return {
      pos: s.pos,
      mmio: [...s.mmio.keys()].flatMap((id) => {
        const f = mmioFacts(s, id);
        return f ? [mmioJson(f)] : [];
      }),
      alerts: peerAlerts(s).map((a) => ({ device: a.device, target: barText(a.target), message: a.message, route: routeJson(a.route) })),
      findings: isolationFindings(s).map((f) => ({ device: f.device, target: barText(f.target), message: f.message, route: routeJson(f.route) })),
    };
  }
  let ref: { device: string; bar: number | null };
  try {
    ref = parseBarRef(spec, 'device');
  } catch (err) {
    if (err instanceof FieldError) throw new HttpError(400, err.message);
    throw err;
  }
  const barText0 = p.str('bar');
  if (barText0 !== undefined && barText0 !== '') {
    if (!/^[0-5]$/.test(barText0)) throw new HttpError(400, `bar: expected 0-5, got ${JSON.stringify(barText0.slice(0, 20))}`);
    ref = { device: ref.device, bar: Number(barText0) };
  }
  const facts = mmioFacts(s, ref.device);
  if (!s.devices.has(ref.device)) throw new HttpError(404, `no device ${JSON.stringify(ref.device.slice(0, 80))} at position ${s.pos}`);
  if (!facts || !facts.bars.some((b) => ref.bar === null || b.bar === ref.bar)) throw new HttpError(404, `${ref.device} has no memory BAR${ref.bar === null ? 's' : ` ${ref.bar}`} known at position ${s.pos}`);
  const access = p.str('access') === 'r' ? 'r' : 'w';
  const a = whoCanMmio(s, { device: ref.device, bar: ref.bar, access });
  return { pos: s.pos, bars: a.bars.map((b) => ({ bar: barText(b), start: hex(b.start), last: hex(b.last) })), reachers: a.reachers.map(mmioReacherJson) };
};

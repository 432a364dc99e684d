/**
 * Resets as readers see them: the sentences of reset and bus-master entries, the log positions
 * behind a device's reset or bus-master state (explain), the JSON of a reset scope (CLI, server,
 * plan), and the devices in reset now (dashboard).
 */
import { activeResets, busMasterOf, methodPhrase, type EventDataMap, type EventType, type ResetScope, type State } from '../domain/index.js';
import type { LogEntry } from '../domain/index.js';

type Render<K extends EventType> = (d: EventDataMap[K], e: LogEntry) => string;

const list = (xs: readonly string[]): string => (xs.length <= 4 ? xs.join(', ') : `${xs.slice(0, 4).join(', ')} and ${xs.length - 4} more`);

export const RESET_SENTENCES: { [K in 'ResetCapsSet' | 'BusMasterSet' | 'ResetStarted' | 'ResetDone' | 'ResetFailed' | 'VmReset']: Render<K> } = {
  ResetCapsSet: (d) => {
    const caps = [d.flr && 'FLR', d.pm && 'PM reset', d.cxl && 'CXL reset', d.slot && 'slot reset', d.ats && 'ATS', d.noBusReset && 'no bus reset'].filter(Boolean).join(', ');
    return `${d.device} reset capabilities: ${caps || 'none'}${d.physfn ? `; it is a VF of ${d.physfn}` : ''}`;
  },
  BusMasterSet: (d) => `Bus Master Enable of ${d.device} was turned ${d.enabled ? 'on' : 'off'}${d.source && d.source !== 'command' ? ` (${d.source})` : ''}${d.enabled ? '' : ': it cannot DMA at all'}`,
  ResetStarted: (d) => {
    const others = d.devices.filter((x) => x !== d.device);
    const also = others.length > 0 ? `; it also resets ${list(others)}` : '';
    const fenced = d.blocked ?? d.devices;
    const one = fenced.length === 1;
    const fence = d.blocking && fenced.length > 0 ? `; during the reset ${list(fenced)} ${one ? 'sits' : 'sit'} on the blocking domain and ${one ? 'its group\'s domain' : 'their groups\' domains'} cannot change (EBUSY)` : '';
    return `${methodPhrase(d.method)} reset of ${d.device} started${also}${fence}`;
  },
  ResetDone: (d) => `the reset of ${d.device} finished${d.devices.length > 1 ? ` (${list(d.devices)})` : ''}; the domains kept during the reset are back`,
  ResetFailed: (d) => `the reset of ${d.device} failed${d.error ? ` (${d.error})` : ''}; devices it fenced stay blocked until a reset of ${d.device} succeeds`,
  VmReset: (d) =>
    d.devicesReset
      ? `VM ${d.vm} (ctx ${d.ctx}) was reset with its assigned devices${d.devices.length ? ` (${list(d.devices)})` : ''}`
      : `VM ${d.vm} (ctx ${d.ctx}) was reset WITHOUT resetting its assigned devices${d.devices.length ? ` (${list(d.devices)}): they keep their mappings` : ''}`,
};

/** Positions of the entries behind a device's reset and bus-master state, for explain. */
export const resetPositions = (s: State, device: string, out: Set<number>): void => {
  for (const r of activeResets(s)) if (r.devices.includes(device)) out.add(r.at);
  const bm = s.busMaster.get(device);
  if (bm && busMasterOf(s, device) !== null) out.add(bm.at);
};

/** A reset scope as JSON (the CLI's --json, the server, plan). */
export const resetScopeJson = (x: ResetScope): Record<string, unknown> => ({
  device: x.device,
  requested: x.requested,
  method: x.method,
  possible: x.possible,
  problem: x.problem,
  kernel: x.kernel,
  blocking: x.blocking,
  methods: x.methods,
  devices: x.devices.map((m) => ({ device: m.device, role: m.role, driver: m.driver, group: m.group, owner: m.owner, fenced: m.fenced, blocker: m.blocker })),
  blockers: x.blockers,
});

/** Devices in reset now, for the dashboard: device → the reset that touches it. */
export const resettingDevices = (s: State): { device: string; reset: string; method: string; fenced: boolean; failed: boolean; at: number }[] => {
  const out: { device: string; reset: string; method: string; fenced: boolean; failed: boolean; at: number }[] = [];
  for (const r of activeResets(s)) for (const d of r.devices) out.push({ device: d, reset: r.device, method: r.method, fenced: r.blocked.includes(d), failed: r.failed, at: r.at });
  return out;
};

/** One line per scope member, for text output. */
export const scopeLines = (x: ResetScope): string[] => {
  const head = x.method
    ? `${x.device}: ${methodPhrase(x.method)} reset${x.requested === 'auto' ? ' (the method the kernel picks)' : ''} touches ${x.devices.length} device(s)${x.blocking ? `; kernel ${x.kernel} fences them on their blocking domains meanwhile` : x.kernel ? `; kernel ${x.kernel} does not fence them` : '; kernel unknown: taken as older than 7.0, nothing fenced'}`
    : `${x.device}: cannot be reset: ${x.problem}`;
  const rows = x.devices.map((m) => `  ${m.device.padEnd(14)} ${m.role.padEnd(8)} ${(m.driver ?? '-').padEnd(12)} ${m.owner ? `owner ${m.owner}` : 'no owner'}${m.fenced ? ', fenced' : ''}${m.blocker ? `  BLOCKS: ${m.blocker}` : ''}`);
  const tail = x.method && !x.possible ? [`refused: ${x.problem}`] : [];
  return [head, ...rows, ...tail];
};

/**
 * The shadow model's guess at resets (see shadow.ts for why it is a guess and not the engine):
 * which devices a reset touches, whether the host's kernel fences them (7.0+), and so whether a
 * domain change of a fenced group is refused EBUSY. It follows the same rules as the model
 * (docs/model.md#resets) in their simplest form: a function reset (auto, flr, pm) touches the
 * function and the VFs of a PF; a bus reset every device on the bus and below; slot and cxl
 * every function of the slot. Multi-device resets are refused when another touched device is in
 * use by a kernel driver or held by another owner.
 */
import { isVfioDriver } from '../../domain/queries.js';
import type { SDev, SGroup } from './shadow.js';

type Cmd = Readonly<Record<string, unknown>>;

interface Caps {
  /** The device object it was recorded for: a device re-added under the same id starts without caps. */
  readonly dev: SDev | null;
  readonly flr: boolean;
  readonly pm: boolean;
  readonly slot: boolean;
  readonly cxl: boolean;
  readonly ats: boolean;
  readonly physfn: string | null;
}

interface Active {
  readonly dev: SDev;
  readonly devices: readonly string[];
  readonly fenced: boolean;
  failed: boolean;
}

/** What the reset shadow reads of the main shadow. */
export interface ShadowView {
  readonly devices: ReadonlyMap<string, SDev>;
  readonly ctxs: ReadonlyMap<string, { readonly uid: number; readonly open: boolean; readonly vm: string | null }>;
  groupOf(dev: SDev): SGroup | undefined;
}

export interface ResetShadow {
  /** Kernel release of the last host.boot (null: none, taken as older than 7.0). */
  kernel: string | null;
  readonly caps: Map<string, Caps>;
  readonly active: Map<string, Active>;
  /** Would the engine refuse this command EBUSY because a reset fences its group? */
  freezes(c: Cmd): boolean;
  /** The devices a reset of `device` by `method` touches, or null when the device cannot be reset that way. */
  scope(device: string, method: string): string[] | null;
  /** Predicts acceptance of a reset command and updates the model when it expects one. */
  apply(c: Cmd): boolean;
  /** Whether a reset of the device is in progress (held). */
  inProgress(device: string): boolean;
  /** Whether reset capabilities are recorded for the device as it is now. */
  hasCaps(device: string): boolean;
}

const uidOf = (c: Cmd): number => ((c.actor as { uid?: number } | undefined)?.uid ?? 0);
const slotOf = (id: string): string => id.slice(0, id.lastIndexOf('.'));
const isBridgeKind = (k: string): boolean => k === 'root-port' || k === 'switch-upstream' || k === 'switch-downstream' || k === 'pcie-to-pci-bridge';
const NO_CAPS: Caps = { dev: null, flr: false, pm: false, slot: false, cxl: false, ats: true, physfn: null };

export const createResetShadow = (sh: ShadowView): ResetShadow => {
  const caps = new Map<string, Caps>();
  const active = new Map<string, Active>();
  const capsOf = (id: string): Caps => {
    const c = caps.get(id);
    return c && c.dev === sh.devices.get(id) ? c : NO_CAPS;
  };
  /** The reset in progress whose target is still the device it was started on. */
  const activeOf = (id: string): Active | undefined => {
    const r = active.get(id);
    return r && r.dev === sh.devices.get(id) ? r : undefined;
  };
  const blocking = (): boolean => {
    const m = /^(\d+)\./.exec(self.kernel ?? '');
    return m !== null && Number(m[1]) >= 7;
  };
  const mates = (d: SDev): readonly string[] => (d.parent ? (sh.devices.get(d.parent)?.children ?? [d.id]) : [d.id]);
  const withBelow = (id: string, out: Set<string>): void => {
    out.add(id);
    for (const c of sh.devices.get(id)?.children ?? []) withBelow(c, out);
  };
  const ownerUid = (d: SDev): number | null => {
    const o = sh.groupOf(d)?.owner;
    return o ? (sh.ctxs.get(o)?.uid ?? null) : null;
  };

  const methodFor = (d: SDev, method: string): string | null => {
    const c = capsOf(d.id);
    const parent = d.parent ? sh.devices.get(d.parent) : undefined;
    const bus = parent !== undefined && isBridgeKind(parent.kind);
    if (method === 'auto') {
      if (c.flr) return 'flr';
      if (c.pm) return 'pm';
      const alone = d.children.length === 0;
      if (c.slot && alone && !mates(d).some((m) => m !== d.id && slotOf(m) === slotOf(d.id))) return 'slot';
      if (bus && alone && mates(d).length === 1) return 'bus';
      return null;
    }
    const ok = method === 'flr' ? c.flr : method === 'pm' ? c.pm : method === 'slot' ? c.slot : method === 'cxl' ? c.cxl : method === 'bus' ? bus : false;
    return ok ? method : null;
  };

  const scope = (device: string, method: string): string[] | null => {
    const d = sh.devices.get(device);
    if (!d || d.kind === 'host-bridge') return null;
    const m = methodFor(d, method);
    if (m === null) return null;
    const out = new Set<string>([d.id]);
    if (m === 'bus') for (const x of mates(d)) withBelow(x, out);
    else if (m === 'slot' || m === 'cxl') for (const x of mates(d)) if (slotOf(x) === slotOf(d.id)) withBelow(x, out);
    else withBelow(d.id, out);
    for (const id of [...out]) for (const vf of caps.keys()) if (capsOf(vf).physfn === id) out.add(vf);
    return [...out];
  };

  /** A touched device (not the target, not a VF) that stops a multi-device reset. */
  const blocks = (target: SDev, other: SDev, uid: number): boolean => {
    if (capsOf(other.id).physfn !== null) return false;
    if (uid !== 0) return ownerUid(other) !== uid;
    if (other.driver !== null && !other.managed) return true;
    const o = sh.groupOf(other)?.owner ?? null;
    return o !== null && o !== (sh.groupOf(target)?.owner ?? null);
  };

  const fencedGroupOf = (device: string): boolean => {
    const d = sh.devices.get(device);
    if (!d) return false;
    const g = sh.groupOf(d);
    const members = g ? g.members : [device];
    for (const target of active.keys()) {
      const r = activeOf(target);
      if (!r?.fenced) continue;
      if (r.devices.some((x) => members.includes(x) && sh.devices.has(x) && capsOf(x).ats)) return true;
    }
    return false;
  };

  const self: ResetShadow = {
    kernel: null,
    caps,
    active,
    scope,
    inProgress: (id) => activeOf(id) !== undefined,
    hasCaps: (id) => capsOf(id) !== NO_CAPS,
    freezes: (c) => {
      if (active.size === 0) return false;
      if (c.type === 'device.attach' || c.type === 'device.detach' || c.type === 'device.bind') return typeof c.device === 'string' && fencedGroupOf(c.device);
      if (c.type === 'group.claim' && typeof c.group === 'string') return fencedGroupOf(c.group);
      return false;
    },
    apply: (c) => {
      const uid = uidOf(c);
      const d = typeof c.device === 'string' ? sh.devices.get(c.device) : undefined;
      switch (c.type) {
        case 'host.boot':
          self.kernel = typeof c.kernel === 'string' ? c.kernel : null;
          caps.clear();
          active.clear();
          return true;
        case 'device.reset-caps': {
          if (!d || uid !== 0) return false;
          const physfn = typeof c.physfn === 'string' ? c.physfn : null;
          if (physfn !== null && (!sh.devices.has(physfn) || physfn === d.id)) return false;
          caps.set(d.id, { dev: d, flr: c.flr === true, pm: c.pm === true, slot: c.slot === true, cxl: c.cxl === true, ats: c.ats !== false, physfn });
          return true;
        }
        case 'device.bus-master':
          return d !== undefined && (uid === 0 || ownerUid(d) === uid);
        case 'device.reset': {
          if (!d) return false;
          const method = typeof c.method === 'string' ? c.method : 'auto';
          const touched = scope(d.id, method);
          if (touched === null) return false;
          if (uid !== 0 && ownerUid(d) !== uid) return false;
          const multi = touched.length > 1 && methodFor(d, method) !== 'flr' && methodFor(d, method) !== 'pm';
          if (multi && touched.some((x) => x !== d.id && sh.devices.has(x) && blocks(d, sh.devices.get(x)!, uid))) return false;
          const cur = activeOf(d.id);
          if (cur && !cur.failed) return false;
          if (c.hold === true) active.set(d.id, { dev: d, devices: touched, fenced: blocking(), failed: false });
          else active.delete(d.id);
          return true;
        }
        case 'device.reset-done': {
          const r = d ? activeOf(d.id) : undefined;
          if (!d || !r || r.failed) return false;
          if (uid !== 0 && ownerUid(d) !== uid) return false;
          if (c.failed === true && r.fenced) r.failed = true;
          else active.delete(d.id);
          return true;
        }
        case 'vm.reset': {
          const ctx = typeof c.ctx === 'string' ? sh.ctxs.get(c.ctx) : undefined;
          if (!ctx || !ctx.open || (uid !== 0 && uid !== ctx.uid) || ctx.vm === null) return false;
          return true;
        }
        default:
          return false;
      }
    },
  };
  return self;
};

/** A device a VMM would reset (an endpoint on vfio-pci), for the storm. */
export const resettable = (d: SDev): boolean => (d.kind === 'endpoint' || d.kind === 'pci-device') && isVfioDriver(d.driver);

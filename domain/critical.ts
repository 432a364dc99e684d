/**
 * Host-critical devices (docs/model.md#host-critical-devices): devices the host itself needs while
 * it runs — the GPU the firmware booted on, the storage holding the mounted root — marked in the
 * log with why (`device.critical`, or observed by ingest from sysfs). A mark is a fact about the
 * host, not about grouping: it survives a boot (and so a what-if), and goes with the device when
 * it is removed. What-if uses it to say which devices would newly share a group with one, and
 * which assignment would take it along.
 */
import type { Device, State } from './state.js';

/** Why a device is host-critical. */
export const CRITICAL_ROLES = ['boot-vga', 'root-storage', 'host-nic', 'console'] as const;
export type CriticalRole = (typeof CRITICAL_ROLES)[number];

export interface CriticalMark {
  readonly role: CriticalRole;
  /** Where the mark came from, in words ("boot_vga = 1", "/ on /dev/nvme0n1p2 (ext4)"); null: not said. */
  readonly detail: string | null;
  /** Position of the entry that set it. */
  readonly at: number;
}

/** How each role reads in a sentence ("the boot GPU"). */
export const ROLE_NOUNS: Readonly<Record<CriticalRole, string>> = {
  'boot-vga': 'the boot GPU',
  'root-storage': 'the root storage',
  'host-nic': "the host's network interface",
  console: "the host's console",
};

export const isCriticalRole = (v: unknown): v is CriticalRole => typeof v === 'string' && (CRITICAL_ROLES as readonly string[]).includes(v);

/** The device's marks (none when it has none or is not present). */
export const criticalOf = (s: State, id: string): readonly CriticalMark[] => s.devices.get(id)?.critical ?? [];

/** Devices with at least one mark, in id order. */
export const criticalDevices = (s: State): Device[] => [...s.devices.values()].filter((d) => (d.critical?.length ?? 0) > 0).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

/** "the boot GPU 0000:00:02.0", "the root storage 0000:3d:00.0 (and the boot GPU)". */
export const criticalNoun = (id: string, marks: readonly CriticalMark[]): string => {
  if (marks.length === 0) return id;
  const [first, ...rest] = marks;
  return `${ROLE_NOUNS[first!.role]} ${id}${rest.length ? ` (also ${rest.map((m) => ROLE_NOUNS[m.role]).join(', ')})` : ''}`;
};

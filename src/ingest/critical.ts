/**
 * Host-critical devices as sysfs shows them (docs/ingest.md#host-critical-devices):
 * - the boot GPU: `bus/pci/devices/*\/boot_vga` holding 1 (the VGA device the firmware used; the
 *   kernel's vga_default_device());
 * - the root storage: the mount table's entry for `/` (the last one: mounts stack) names a block
 *   device; `class/block/<name>` links into the device tree, a partition sits inside its disk, a
 *   device-mapper or md device lists what it is built on in `slaves/` (followed down to disks), and
 *   a disk's nearest PCI function above it is the controller that holds it (an NVMe controller, an
 *   AHCI controller through its ata port, a USB host controller). An NVMe multipath head sits in
 *   `virtual/nvme-subsystem/…`: its controllers are the subsystem's `nvmeN` links.
 * What cannot be resolved is said, never guessed: a network root (nfs, cifs, 9p, virtiofs…), a root
 * on no block device (tmpfs, overlay: a live image or a container), a ZFS dataset, a loop device,
 * a block device with no PCI function above it.
 *
 * Reading is synchronous and read-only. `live` (the tree is this machine's /sys) also lets the
 * mount source be resolved through /dev symlinks and `/dev/root` through the device number of /.
 */
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { isPciFunctionId } from '../../domain/encoding.js';
import type { IngestEvent } from './model.js';

export interface CriticalFact {
  readonly device: string;
  readonly role: 'boot-vga' | 'root-storage';
  readonly detail: string;
}

export interface CriticalScan {
  readonly facts: CriticalFact[];
  /** What could not be resolved, in words (a network root, a virtual block device…). */
  readonly unresolved: string[];
  /** The mount table read, or null when there was none. */
  readonly mounts: string | null;
}

export interface MountEntry {
  readonly source: string;
  readonly target: string;
  readonly fstype: string;
}

/** `/proc/self/mounts` lines (octal escapes such as \040 decoded); malformed lines are skipped. */
export const parseMounts = (text: string): MountEntry[] => {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || f[0] === '') continue;
    out.push({ source: unescape(f[0]!), target: unescape(f[1]!), fstype: f[2]! });
  }
  return out;
};

/** The entry mounted on `/` now: the last one (a later mount hides the ones below it). */
export const rootMount = (entries: readonly MountEntry[]): MountEntry | null => {
  for (let i = entries.length - 1; i >= 0; i--) if (entries[i]!.target === '/') return entries[i]!;
  return null;
};

const NETWORK = new Set(['nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', '9p', 'virtiofs', 'ceph', 'glusterfs', 'afs', 'lustre', 'fuse.sshfs', 'davfs']);
const NO_DEVICE = new Set(['tmpfs', 'ramfs', 'rootfs', 'overlay', 'aufs', 'fuse-overlayfs']);

const readTrim = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
};

const list = (dir: string): string[] => {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
};

const real = (path: string): string | null => {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
};

/** The nearest PCI function id among a device path's components, from the deepest up. */
export const pciAncestorOfPath = (path: string): string | null => {
  const comps = path.split(sep);
  for (let i = comps.length - 1; i >= 0; i--) if (isPciFunctionId(comps[i]!)) return comps[i]!.toLowerCase();
  return null;
};

/** Linux dev_t → "major:minor" (new_decode_dev), for /dev/root on the live host. */
const devNumbers = (dev: number): string => {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
};

/** A mount source → a block device name under class/block, or why not. */
const blockNameOf = (sys: string, m: MountEntry, live: boolean): { name: string } | { why: string } => {
  const src = m.source;
  if (NETWORK.has(m.fstype) || /^[^/]+:\//.test(src) || src.startsWith('//')) return { why: `/ is on ${m.fstype} ${src}: a network filesystem, no local storage device to mark` };
  if (NO_DEVICE.has(m.fstype)) return { why: `/ is a ${m.fstype} (${src}): no block device holds it (a live image, an initramfs or a container?); nothing marked` };
  if (m.fstype === 'zfs') return { why: `/ is ZFS dataset ${src}: the pool's devices are not read; nothing marked` };
  if (/^(UUID|LABEL|PARTUUID|PARTLABEL)=/.test(src)) return { why: `/ is mounted from ${src}, which names no device without /dev; nothing marked` };
  if (!src.startsWith('/dev/')) return { why: `/ is mounted from ${JSON.stringify(src)} (${m.fstype}), not a block device; nothing marked` };
  let name = src.slice('/dev/'.length);
  if (live) {
    if (name === 'root') {
      try {
        const link = real(join(sys, 'dev', 'block', devNumbers(statSync('/').dev)));
        if (link) return { name: basename(link) };
      } catch {
        // fall through: said below
      }
    }
    const r = real(src);
    if (r && r.startsWith('/dev/')) name = r.slice('/dev/'.length);
  }
  if (name.startsWith('mapper/')) {
    const dm = list(join(sys, 'class', 'block')).find((b) => readTrim(join(sys, 'class', 'block', b, 'dm', 'name')) === name.slice('mapper/'.length));
    if (dm) return { name: dm };
  }
  if (existsSync(join(sys, 'class', 'block', name))) return { name };
  return { why: `/ is mounted from ${src}, which is not in ${join('class', 'block')} of this sysfs tree${live ? '' : ' (a captured tree resolves /dev/mapper names and plain device names only)'}; nothing marked` };
};

/**
 * The PCI functions a block device is stored on: down `slaves/` to the disks, then up to the
 * nearest PCI function. `hops` collects the block devices passed on the way; `why` what is lost.
 */
const storageOf = (sys: string, name: string, hops: string[], why: string[], depth = 0): { device: string; usb: boolean }[] => {
  if (depth > 16) return [];
  const dir = real(join(sys, 'class', 'block', name));
  if (dir === null) {
    why.push(`${name}: not in class/block`);
    return [];
  }
  hops.push(name);
  const slaves = list(join(dir, 'slaves'));
  if (slaves.length > 0) return slaves.flatMap((s) => storageOf(sys, s, hops, why, depth + 1));
  const pci = pciAncestorOfPath(dir);
  if (pci !== null) return [{ device: pci, usb: /\/usb\d+\//.test(dir) }];
  // NVMe multipath: the head disk sits in the subsystem; its controllers are the subsystem's nvmeN links.
  const subsys = /(.*\/nvme-subsystem\/nvme-subsys\d+)\//.exec(dir);
  if (subsys) {
    const ctrls = list(subsys[1]!).filter((c) => /^nvme\d+$/.test(c));
    const out = ctrls.map((c) => real(join(subsys[1]!, c))).map((p) => (p ? pciAncestorOfPath(p) : null)).filter((p): p is string => p !== null);
    if (out.length > 0) return out.map((device) => ({ device, usb: false }));
  }
  if (/^loop\d+$/.test(name)) why.push(`${name} is a loop device: the file behind it is not followed`);
  else if (dir.includes(`${sep}virtual${sep}`)) why.push(`${name} is a virtual block device with nothing under it (zram, a RAM disk?)`);
  else why.push(`${name} sits on no PCI function (${dir.split(sep).slice(-4).join('/')})`);
  return [];
};

/**
 * Boot GPU and root storage of a sysfs tree. `mounts`: the mount table's text (null: none given,
 * and the root storage is not looked up — said in `unresolved`).
 */
export const scanCritical = (sys: string, mounts: string | null, live: boolean): CriticalScan => {
  const facts: CriticalFact[] = [];
  const unresolved: string[] = [];
  const devDir = join(sys, 'bus', 'pci', 'devices');
  for (const id of list(devDir)) {
    if (!isPciFunctionId(id)) continue;
    if (readTrim(join(devDir, id, 'boot_vga')) === '1') facts.push({ device: id.toLowerCase(), role: 'boot-vga', detail: 'boot_vga = 1' });
  }
  if (mounts === null) {
    unresolved.push('root storage not looked up: no mount table for this tree (give one with --mounts FILE, a copy of /proc/self/mounts)');
    return { facts, unresolved, mounts };
  }
  const root = rootMount(parseMounts(mounts));
  if (root === null) {
    unresolved.push('root storage: the mount table has no entry for /');
    return { facts, unresolved, mounts };
  }
  const b = blockNameOf(sys, root, live);
  if ('why' in b) {
    unresolved.push(`root storage: ${b.why}`);
    return { facts, unresolved, mounts };
  }
  const hops: string[] = [];
  const why: string[] = [];
  const found = storageOf(sys, b.name, hops, why);
  const via = hops.length > 0 && !(hops.length === 1 && `/dev/${hops[0]}` === root.source) ? ` via ${hops.join(' → ')}` : '';
  const seen = new Set<string>();
  for (const f of found) {
    if (seen.has(f.device)) continue;
    seen.add(f.device);
    facts.push({ device: f.device, role: 'root-storage', detail: `/ on ${root.source} (${root.fstype})${via}${f.usb ? ', through USB' : ''}` });
  }
  for (const w of why) unresolved.push(`root storage: ${w}`);
  if (found.length === 0 && why.length === 0) unresolved.push(`root storage: ${b.name} leads to no PCI function`);
  return { facts, unresolved, mounts };
};

/** The mount table for a sysfs root: `--mounts`, else `<root>/../proc/self/mounts` (so /proc/self/mounts for /sys, and a capture laid out as sys/ and proc/ next to each other). */
export const mountsFor = (sys: string, file?: string | null): string | null => {
  if (file) return readFileSync(file, 'utf8');
  for (const f of [join(sys, '..', 'proc', 'self', 'mounts'), join(sys, '..', 'proc', 'mounts')]) {
    const t = readTrim(f);
    if (t !== null) return t;
  }
  return null;
};

/** CriticalMarked events for the facts whose device the batch adds (each with that DeviceAdded's metadata). */
export const criticalEvents = (facts: readonly CriticalFact[], events: readonly IngestEvent[]): IngestEvent[] => {
  const added = new Map<string, IngestEvent>();
  for (const e of events) if (e.type === 'DeviceAdded') added.set(String(e.data.device), e);
  const out: IngestEvent[] = [];
  for (const f of facts) {
    const e = added.get(f.device);
    if (e) out.push({ type: 'CriticalMarked', data: { device: f.device, role: f.role, detail: f.detail }, meta: e.meta });
  }
  return out;
};

/** "0000:00:02.0 boot-vga, 0000:3d:00.0 root-storage", or "none found". */
export const formatCritical = (s: CriticalScan): string =>
  `host-critical: ${s.facts.length ? s.facts.map((f) => `${f.device} ${f.role} (${f.detail})`).join(', ') : 'none found'}${s.unresolved.length ? `; ${s.unresolved.join('; ')}` : ''}`;

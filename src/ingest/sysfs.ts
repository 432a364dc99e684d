/**
 * A live host's sysfs → observed events. `bus/pci/devices/*` are symlinks into
 * `devices/pci0000:00/…`, and that real path is the parent chain; each function directory has
 * `class`, `vendor`, `device`, a `driver` link, an `iommu_group` link and the binary `config`
 * space, from which the PCIe port type (capability 0x10) and the ACS extended capability
 * (0x000d) are read. `kernel/iommu_groups/N/reserved_regions` become device reserved regions.
 *
 * Reading is synchronous and read-only. A config file shorter than the capability lists (sysfs
 * serves only 64 bytes to non-root readers) is not an error: the type and ACS are then unknown
 * and a warning says so; model.ts decides what that means.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { hex, isPciFunctionId, isPciHostBridgeId } from '../../domain/encoding.js';
import type { RegionJson } from '../../domain/events.js';
import { REGION_KINDS, type PciKind, type RegionKind } from '../../domain/state.js';
import { parseResource, withMmio } from './mmio.js';
import { IngestError, buildEvents, newFunction, type IngestOptions, type IngestResult, type PciFunctionInfo } from './model.js';
import { readConfigBusMaster, resetFactEvents } from './reset-facts.js';
import { acsRegisters } from './acs-registers.js';
import { criticalEvents, mountsFor, scanCritical } from './critical.js';

/** PCIe capabilities register bits 7:4 (PCI_EXP_FLAGS_TYPE). */
const PORT_TYPES: Readonly<Record<number, PciKind>> = {
  0: 'endpoint',
  1: 'legacy-endpoint',
  4: 'root-port',
  5: 'switch-upstream',
  6: 'switch-downstream',
  7: 'pcie-to-pci-bridge',
  8: 'pci-to-pcie-bridge',
  9: 'rc-endpoint',
  // Root Complex Event Collector: never provides ACS, groups like an RCiEP on its root bus.
  10: 'rc-endpoint',
};

const PCI_CAP_ID_EXP = 0x10;
const PCI_EXT_CAP_ID_ACS = 0x000d;

export interface ConfigInfo {
  readonly capsKnown: boolean;
  readonly express: PciKind | null;
  readonly acs: PciFunctionInfo['acs'];
  readonly bridge: boolean;
  readonly busRange: PciFunctionInfo['busRange'];
}

/** Reads the PCIe type and ACS capability out of a config space image. */
export const parseConfig = (buf: Uint8Array, id: string, warnings: string[]): ConfigInfo => {
  const u8 = (o: number): number => buf[o] ?? 0;
  const u16 = (o: number): number => u8(o) | (u8(o + 1) << 8);
  const u32 = (o: number): number => (u16(o) | (u16(o + 2) << 16)) >>> 0;
  if (buf.length < 64) {
    warnings.push(`${id}: config is ${buf.length} bytes, not even the standard header: type and ACS unknown`);
    return { capsKnown: false, express: null, acs: 'unknown', bridge: false, busRange: null };
  }
  const headerType = u8(0x0e) & 0x7f;
  const bridge = headerType === 1;
  const busRange = bridge ? { primary: u8(0x18), secondary: u8(0x19), subordinate: u8(0x1a) } : null;
  if (buf.length < 256) {
    warnings.push(`${id}: config is ${buf.length} bytes (sysfs gives non-root readers only the header): PCIe type and ACS unknown`);
    return { capsKnown: false, express: null, acs: 'unknown', bridge, busRange };
  }
  let express: PciKind | null = null;
  if (u16(0x06) & 0x10) {
    // Standard capability list; the guard stops a corrupt (looping) list.
    let ptr = u8(0x34) & 0xfc;
    for (let guard = 0; ptr >= 0x40 && guard < 48; guard++) {
      if (u8(ptr) === PCI_CAP_ID_EXP) {
        const type = (u16(ptr + 2) >> 4) & 0xf;
        express = PORT_TYPES[type] ?? null;
        if (express === null) warnings.push(`${id}: unknown PCIe port type ${type}; kind taken from the header type`);
        break;
      }
      ptr = u8(ptr + 1) & 0xfc;
    }
  }
  if (express === null) return { capsKnown: true, express, acs: null, bridge, busRange };
  if (buf.length <= 0x100) {
    warnings.push(`${id}: PCIe device but only ${buf.length} bytes of config readable: the extended capabilities (ACS) are unknown`);
    return { capsKnown: true, express, acs: 'unknown', bridge, busRange };
  }
  // Extended capabilities: 32-bit header = id (15:0) | version (19:16) | next (31:20).
  let off = 0x100;
  for (let guard = 0; off >= 0x100 && off + 8 <= buf.length && guard < 480; guard++) {
    const h = u32(off);
    if (h === 0 || h === 0xffffffff) break;
    if ((h & 0xffff) === PCI_EXT_CAP_ID_ACS) {
      return { capsKnown: true, express, acs: acsRegisters(u16(off + 4), u16(off + 6)), bridge, busRange };
    }
    off = (h >>> 20) & 0xffc;
  }
  return { capsKnown: true, express, acs: null, bridge, busRange };
};

const readTrim = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
};

const linkName = (path: string): string | null => {
  try {
    return basename(readlinkSync(path));
  } catch {
    return null;
  }
};

const hexId = (s: string | null, digits: number): string | null => {
  if (s === null) return null;
  const m = /^0x([0-9a-f]+)$/i.exec(s);
  return m ? m[1]!.toLowerCase().padStart(digits, '0').slice(0, digits) : null;
};

/** `0x00000000fee00000 0x00000000feefffff msi` lines → regions; throws naming the file and line. */
export const parseReservedRegions = (text: string, file: string): RegionJson[] => {
  const out: RegionJson[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const m = /^(0x[0-9a-f]{1,16})\s+(0x[0-9a-f]{1,16})\s+(\S+)$/i.exec(line);
    if (!m) throw new IngestError(i + 1, `${file}: expected "0xSTART 0xEND type", got ${JSON.stringify(line.slice(0, 60))}`);
    const kind = m[3]!.toLowerCase();
    if (!(REGION_KINDS as readonly string[]).includes(kind)) throw new IngestError(i + 1, `${file}: unknown region type ${JSON.stringify(kind)} (known: ${REGION_KINDS.join(', ')})`);
    const start = BigInt(m[1]!);
    const last = BigInt(m[2]!);
    if (last < start) throw new IngestError(i + 1, `${file}: end ${m[2]} is below start ${m[1]}`);
    out.push({ start: hex(start), last: hex(last), kind: kind as RegionKind });
  });
  return out;
};

/** Reads the functions of a sysfs tree (no events yet). */
export const readSysfs = (root: string): { functions: PciFunctionInfo[]; warnings: string[] } => {
  const warnings: string[] = [];
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new IngestError(null, `${root}: not a directory (expected a sysfs root such as /sys)`);
  const devDir = join(root, 'bus', 'pci', 'devices');
  if (!existsSync(devDir)) {
    warnings.push(`${devDir}: no PCI bus in this sysfs`);
    return { functions: [], warnings };
  }

  const regionsByGroup = new Map<number, RegionJson[]>();
  const groupsDir = join(root, 'kernel', 'iommu_groups');
  if (existsSync(groupsDir)) {
    for (const g of readdirSync(groupsDir)) {
      if (!/^\d+$/.test(g)) continue;
      const file = join(groupsDir, g, 'reserved_regions');
      const text = readTrim(file);
      if (text !== null) regionsByGroup.set(Number(g), parseReservedRegions(text, file));
    }
  }

  const functions: PciFunctionInfo[] = [];
  for (const name of readdirSync(devDir).sort()) {
    if (!isPciFunctionId(name)) {
      warnings.push(`${name}: not a DDDD:BB:DD.F address (a VMD or other synthetic domain?); skipped`);
      continue;
    }
    const link = join(devDir, name);
    let dir: string;
    try {
      dir = realpathSync(link);
    } catch (err) {
      warnings.push(`${name}: cannot resolve ${link} (${(err as NodeJS.ErrnoException).code ?? 'error'}); skipped`);
      continue;
    }
    const f = newFunction(name.toLowerCase(), 0);
    // The real path names the parent chain: the nearest PCI function or host bridge above us.
    const comps = dir.split(sep);
    const at = comps.lastIndexOf(name);
    for (let i = at - 1; i >= 0; i--) {
      const c = comps[i]!;
      if (isPciFunctionId(c) || isPciHostBridgeId(c)) {
        f.parent = c.toLowerCase();
        break;
      }
    }
    const cls = readTrim(join(dir, 'class'));
    const code = hexId(cls, 6);
    f.classCode = code ? code.slice(0, 4) : null;
    f.vendorId = hexId(readTrim(join(dir, 'vendor')), 4);
    f.deviceId = hexId(readTrim(join(dir, 'device')), 4);
    f.driver = linkName(join(dir, 'driver'));
    const g = linkName(join(dir, 'iommu_group'));
    if (g !== null) {
      if (!/^\d+$/.test(g)) throw new IngestError(null, `${join(dir, 'iommu_group')}: links to ${JSON.stringify(g)}, not a group number`);
      f.group = Number(g);
      f.reserved = regionsByGroup.get(f.group) ?? [];
    }
    let config: Uint8Array | null = null;
    try {
      config = readFileSync(join(dir, 'config'));
    } catch (err) {
      warnings.push(`${f.id}: config not readable (${(err as NodeJS.ErrnoException).code ?? 'error'}): PCIe type and ACS unknown`);
    }
    if (config) {
      readConfigBusMaster(f, config);
      const c = parseConfig(config, f.id, warnings);
      f.capsKnown = c.capsKnown;
      f.express = c.express;
      f.acs = c.acs;
      f.bridge = c.bridge || f.classCode === '0604';
      f.busRange = c.busRange;
    } else f.bridge = f.classCode === '0604';
    const resource = readTrim(join(dir, 'resource'));
    if (resource !== null) f.mmio = parseResource(resource, f.bridge, `${f.id}/resource`);
    functions.push(f);
  }
  return { functions, warnings };
};

/** `ingest sysfs [ROOT]`: a sysfs tree (default /sys) → observed events (all or nothing). */
export const ingestSysfs = (root = '/sys', options: IngestOptions = {}): IngestResult => {
  const { functions, warnings } = readSysfs(root);
  if (functions.length > 0 && !functions.some((f) => f.group !== null)) {
    warnings.push('no device has an iommu_group link: this host runs without an IOMMU (or with it off), so every device is groupless');
  }
  const cmdline = readTrim(join(root, '..', 'proc', 'cmdline'));
  const events = withMmio(buildEvents(functions, 'sysfs', options, root === '/sys' ? cmdline : null, warnings), functions);
  events.push(...resetFactEvents(functions, events));
  // Host-critical devices: the boot GPU, and the storage holding the mounted root.
  let mounts: string | null;
  try {
    mounts = mountsFor(root, options.mounts);
  } catch (err) {
    throw new IngestError(null, `--mounts ${options.mounts}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  const critical = scanCritical(root, mounts, root === '/sys');
  events.push(...criticalEvents(critical.facts, events));
  // The running kernel's release (uname -r), for the live tree only, like the command line.
  const kernel = root === '/sys' ? readTrim(join(root, '..', 'proc', 'sys', 'kernel', 'osrelease')) : null;
  return { events, warnings, cmdline: root === '/sys' ? cmdline : null, kernel, critical };
};

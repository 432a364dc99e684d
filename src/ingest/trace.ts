/**
 * iommu tracepoint lines (`/sys/kernel/tracing/trace_pipe` with `events/iommu/` enabled) → observed
 * events. A trace line is `<task>-<pid> [<cpu>] <flags> <seconds>: <event>: <printk text>`; the
 * printk texts are those of the kernel's trace/events/iommu.h:
 *
 * - add_device_to_group / remove_device_from_group: `IOMMU: groupID=%d device=%s`
 * - attach_device_to_domain: `IOMMU: device=%s`
 * - map: `IOMMU: iova=0x%016llx - 0x%016llx paddr=0x%016llx size=%zu`
 * - unmap: `IOMMU: iova=0x%016llx - 0x%016llx size=%zu unmapped_size=%zu`
 * - io_page_fault: `IOMMU:%s %s iova=0x%016llx flags=0x%04x` (driver, device; flags bit 0: write)
 *
 * Group changes become `KernelMessage` notes (kind `iommu-group`, which `verify` reads, or
 * `iommu-group-removed`), attaches a note of kind `domain-attached` (the tracepoint names no
 * domain), faults `FaultRecorded` with `source: "observed"`. map/unmap name no domain either, so
 * they cannot become `Mapped`/`Unmapped`; they are notes only when asked for (`maps`), else counted.
 */
import { hex } from '../../domain/encoding.js';

export interface TraceLine {
  /** Seconds since boot as printed (trace clock `local`/`boot`). */
  readonly time: string;
  readonly event: string;
  readonly text: string;
}

const LINE = /^\s*(.*?)\s+\[(\d+)\]\s+(?:\S+\s+)?(\d+\.\d+):\s+([a-z_]+):\s*(.*)$/;

/** Splits a trace_pipe line; null for anything else (comments, lost-event notices). */
export const splitTraceLine = (line: string): TraceLine | null => {
  const m = LINE.exec(line);
  if (!m) return null;
  return { time: m[3]!, event: m[4]!, text: m[5]!.trim() };
};

export type TraceResult =
  | { readonly kind: 'event'; readonly type: string; readonly data: Record<string, unknown> }
  | { readonly kind: 'map' | 'unmap'; readonly data: Record<string, unknown> }
  | { readonly kind: 'ignored' }
  | { readonly kind: 'malformed'; readonly reason: string };

const PCI = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i;
const device = (s: string): string => (PCI.test(s) ? s.toLowerCase() : s);

/** One iommu tracepoint line's meaning. */
export const parseTraceEvent = (t: TraceLine): TraceResult => {
  let m: RegExpExecArray | null;
  switch (t.event) {
    case 'add_device_to_group':
    case 'remove_device_from_group':
      m = /^IOMMU: groupID=(-?\d+) device=(\S+)$/.exec(t.text);
      if (!m) return { kind: 'malformed', reason: `${t.event}: expected "IOMMU: groupID=N device=NAME"` };
      return {
        kind: 'event',
        type: 'KernelMessage',
        data: { device: device(m[2]!), kind: t.event === 'add_device_to_group' ? 'iommu-group' : 'iommu-group-removed', group: Number(m[1]), message: `${t.event}: ${t.text}` },
      };
    case 'attach_device_to_domain':
      m = /^IOMMU: device=(\S+)$/.exec(t.text);
      if (!m) return { kind: 'malformed', reason: `${t.event}: expected "IOMMU: device=NAME"` };
      return { kind: 'event', type: 'KernelMessage', data: { device: device(m[1]!), kind: 'domain-attached', message: `${t.event}: ${t.text}` } };
    case 'map':
      m = /^IOMMU: iova=(0x[0-9a-f]+) - (0x[0-9a-f]+) paddr=(0x[0-9a-f]+) size=(\d+)$/i.exec(t.text);
      if (!m) return { kind: 'malformed', reason: 'map: expected "IOMMU: iova=0x… - 0x… paddr=0x… size=N"' };
      return { kind: 'map', data: { device: null, kind: 'iommu-map', iova: hex(BigInt(m[1]!)), end: hex(BigInt(m[2]!)), pa: hex(BigInt(m[3]!)), size: Number(m[4]), message: `map: ${t.text}` } };
    case 'unmap':
      m = /^IOMMU: iova=(0x[0-9a-f]+) - (0x[0-9a-f]+) size=(\d+) unmapped_size=(\d+)$/i.exec(t.text);
      if (!m) return { kind: 'malformed', reason: 'unmap: expected "IOMMU: iova=0x… - 0x… size=N unmapped_size=N"' };
      return { kind: 'unmap', data: { device: null, kind: 'iommu-unmap', iova: hex(BigInt(m[1]!)), end: hex(BigInt(m[2]!)), size: Number(m[3]), unmapped: Number(m[4]), message: `unmap: ${t.text}` } };
    case 'io_page_fault': {
      m = /^IOMMU:\s*(\S+) (\S+) iova=(0x[0-9a-f]+) flags=(0x[0-9a-f]+)$/i.exec(t.text);
      if (!m) return { kind: 'malformed', reason: 'io_page_fault: expected "IOMMU:DRIVER DEVICE iova=0x… flags=0x…"' };
      const flags = Number(BigInt(m[4]!));
      return {
        kind: 'event',
        type: 'FaultRecorded',
        data: {
          device: device(m[2]!),
          iova: hex(BigInt(m[3]!)),
          access: flags & 1 ? 'w' : 'r',
          pasid: null,
          reason: 'UNKNOWN',
          flags: ['io_page_fault', `driver=${m[1]}`, `flags=${m[4]}`],
          source: 'observed',
          message: `io_page_fault: ${t.text}`,
        },
      };
    }
    default:
      return { kind: 'ignored' };
  }
};

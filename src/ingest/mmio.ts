/**
 * BARs, bridge windows and ATS for ingest (issue 20): from lspci `-vv` (`Region N: Memory at …
 * [size=…]`, `Memory behind bridge: …`, `Prefetchable memory behind bridge: …`, `ATSCtl:
 * Enable+`) and from a sysfs function's `resource` file (one `start end flags` line per resource:
 * BARs 0–5, the ROM, then the bridge windows). Each function with any of them becomes one
 * MmioDescribed event after its DeviceAdded; its `acsOverride` says whether the function's ACS
 * claim came from pcie_acs_override.
 */
import { hex } from '../../domain/encoding.js';
import type { BarJson, WindowJson } from '../../domain/bars.js';
import { IngestError, type IngestEvent, type PciFunctionInfo } from './model.js';

export interface FunctionMmio {
  bars: BarJson[];
  windows: WindowJson[];
  ats: boolean;
}

const UNITS: Readonly<Record<string, bigint>> = { '': 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };

const sizeOf = (text: string, n: number): bigint => {
  const m = /^(\d+)([KMGT]?)$/.exec(text);
  if (!m) throw new IngestError(n, `malformed BAR size ${JSON.stringify(text.slice(0, 20))}: expected e.g. 16K, 256M, 8G`);
  return BigInt(m[1]!) * UNITS[m[2]!]!;
};

const factsOf = (f: PciFunctionInfo): FunctionMmio => (f.mmio ??= { bars: [], windows: [], ats: false });

const REGION = /^Region (\d): Memory at ([0-9a-f]+) \((?:32|64)-bit, (non-prefetchable|prefetchable)\)(.*)$/i;
const WINDOW = /^(Prefetchable memory|Memory) behind bridge: ([0-9a-f]+)-([0-9a-f]+)(.*)$/i;

/** Reads one lspci detail line; true when it was a BAR, window or ATS line. */
export const readMmioLine = (f: PciFunctionInfo, t: string, n: number): boolean => {
  let m: RegExpExecArray | null;
  if ((m = REGION.exec(t))) {
    const rest = m[4]!;
    if (/\[(?:disabled|virtual)\]/.test(rest)) return true;
    const size = /\[size=([^\]]+)\]/.exec(rest);
    if (!size) return true;
    const bar = Number(m[1]);
    if (bar > 5) throw new IngestError(n, `${f.id}: Region ${bar}: a BAR index is 0-5`);
    const start = BigInt(`0x${m[2]}`);
    const facts = factsOf(f);
    if (facts.bars.some((b) => b.bar === bar)) throw new IngestError(n, `${f.id}: Region ${bar} given twice`);
    facts.bars.push({ bar, start: hex(start), last: hex(start + sizeOf(size[1]!, n) - 1n), ...(m[3] === 'prefetchable' ? { prefetchable: true } : {}) });
    return true;
  }
  if ((m = WINDOW.exec(t))) {
    if (/\[disabled\]/.test(m[4]!)) return true;
    const start = BigInt(`0x${m[2]}`);
    const last = BigInt(`0x${m[3]}`);
    if (last < start) return true;
    factsOf(f).windows.push({ kind: /^Prefetchable/i.test(m[1]!) ? 'prefetchable' : 'memory', start: hex(start), last: hex(last) });
    return true;
  }
  if ((m = /^ATSCtl:\s*Enable([+-])/.exec(t))) {
    factsOf(f).ats = m[1] === '+';
    return true;
  }
  return false;
};

const IORESOURCE_MEM = 0x200n;
const IORESOURCE_PREFETCH = 0x2000n;

/**
 * A sysfs `resource` file: BARs 0–5 (memory ones), and for a bridge its memory windows (the last
 * four lines: I/O, memory, prefetchable, and a spare the kernel leaves empty).
 */
export const parseResource = (text: string, bridge: boolean, file: string): FunctionMmio => {
  const out: FunctionMmio = { bars: [], windows: [], ats: false };
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  lines.forEach((line, i) => {
    const m = /^\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s*$/i.exec(line);
    if (!m) throw new IngestError(null, `${file}: line ${i + 1}: expected "0xSTART 0xEND 0xFLAGS", got ${JSON.stringify(line.slice(0, 60))}`);
    const start = BigInt(m[1]!);
    const end = BigInt(m[2]!);
    const flags = BigInt(m[3]!);
    if ((flags & IORESOURCE_MEM) === 0n || end <= start) return;
    if (i <= 5) out.bars.push({ bar: i, start: hex(start), last: hex(end), ...((flags & IORESOURCE_PREFETCH) !== 0n ? { prefetchable: true } : {}) });
    else if (bridge && i >= lines.length - 4) out.windows.push({ kind: (flags & IORESOURCE_PREFETCH) !== 0n ? 'prefetchable' : 'memory', start: hex(start), last: hex(end) });
  });
  return out;
};

/** The MmioDescribed events of the functions that have facts, each right after its DeviceAdded. */
export const withMmio = (events: IngestEvent[], functions: readonly PciFunctionInfo[]): IngestEvent[] => {
  const facts = new Map(functions.filter((f) => f.mmio && (f.mmio.bars.length > 0 || f.mmio.windows.length > 0 || f.mmio.ats)).map((f) => [f.id, f.mmio!]));
  const out: IngestEvent[] = [];
  for (const e of events) {
    out.push(e);
    if (e.type !== 'DeviceAdded') continue;
    const id = String(e.data.device);
    const m = facts.get(id);
    const overridden = (e.data.ingest as { acsQuirkFrom?: unknown } | undefined)?.acsQuirkFrom === 'acs-override';
    // An override's isolation claim is a routing fact even where no BAR or window is known.
    if (!m && !overridden) continue;
    out.push({ type: 'MmioDescribed', data: { device: id, bars: m?.bars ?? [], windows: m?.windows ?? [], ats: m?.ats ?? false, acsOverride: overridden }, meta: e.meta });
  }
  return out;
};

/**
 * Kernel log → observed events. DMA faults (AMD-Vi `IO_PAGE_FAULT`, Intel `DMAR: [DMA Read]`)
 * become `FaultRecorded`; what the kernel said about groups and isolation ("Adding to iommu
 * group", "group N is not viable", ACS quirks, the command line) becomes `KernelMessage` notes
 * (an observed event type the reducer ignores; `verify` reads the group notes).
 *
 * dmesg never creates devices: it carries no port types and no ACS, so devices made from it
 * would get meaningless derived groups. Ingest the topology from lspci or sysfs; the notes then
 * supply the kernel's group for devices that were added without one.
 *
 * Accepted prefixes: `[   12.345678] ` (kept as meta.kernelTime), `dmesg --time-format iso`
 * and `journalctl -o short-iso` times (meta.at), `dmesg -T` (taken as UTC) and plain syslog
 * `Mar 12 01:26:12 host kernel: ` (no year: meta.at stays the ingest time).
 */
import { hex } from '../../domain/encoding.js';
import { IngestError, type IngestEvent, type IngestMeta, type IngestOptions, type IngestResult } from './model.js';

const BDF = '(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]';
const fullBdf = (s: string): string => (s.length === 7 ? `0000:${s}` : s).toLowerCase();

interface Prefix {
  readonly body: string;
  readonly kernelTime: string | null;
  readonly wallClock: string | null;
}

const splitPrefix = (line: string, warnOnce: (w: string) => void): Prefix => {
  let body = line;
  let kernelTime: string | null = null;
  let wallClock: string | null = null;
  let m: RegExpExecArray | null;
  if ((m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[,.](\d+))?([+-]\d\d:?\d\d|Z)\s+/.exec(body))) {
    const frac = m[2] ? `.${m[2].slice(0, 3).padEnd(3, '0')}` : '';
    const zone = m[3]!.length === 5 ? `${m[3]!.slice(0, 3)}:${m[3]!.slice(3)}` : m[3]!;
    const t = Date.parse(`${m[1]}${frac}${zone}`);
    if (!Number.isNaN(t)) wallClock = new Date(t).toISOString();
    body = body.slice(m[0].length);
  } else if ((m = /^\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]\s*/.exec(body))) {
    const t = Date.parse(`${m[1]} UTC`);
    if (!Number.isNaN(t)) wallClock = new Date(t).toISOString();
    warnOnce('dmesg -T times carry no time zone: taken as UTC');
    body = body.slice(m[0].length);
  } else if ((m = /^\w{3} +\d+ \d\d:\d\d:\d\d \S+ kernel:\s*/.exec(body))) {
    body = body.slice(m[0].length);
  }
  if ((m = /^\S+ kernel:\s*/.exec(body)) && wallClock !== null) body = body.slice(m[0].length);
  else if ((m = /^kernel:\s*/.exec(body))) body = body.slice(m[0].length);
  if ((m = /^\[\s*(\d+\.\d+)\]\s?/.exec(body))) {
    kernelTime = m[1]!;
    body = body.slice(m[0].length);
  }
  return { body, kernelTime, wallClock };
};

/** AMD IOMMU event flags (IO_PAGE_FAULT), low bit first. */
const AMD_FLAGS: readonly [number, string][] = [
  [0x001, 'GN'],
  [0x002, 'NX'],
  [0x004, 'US'],
  [0x008, 'I'],
  [0x010, 'PR'],
  [0x020, 'RW'],
  [0x040, 'PE'],
  [0x080, 'RZ'],
  [0x100, 'TR'],
];

/** Intel VT-d fault reasons that mean "no domain" (root/context entry absent or invalid). */
const INTEL_DOMAIN_REASONS = new Set([0x1, 0x2, 0x3]);
/** …and the ones that mean "the domain has no (permitted) mapping". */
const INTEL_MAPPING_REASONS = new Set([0x4, 0x5, 0x6, 0x7, 0xc]);

const field = (s: string, name: string): string | null => {
  const m = new RegExp(`\\b${name}=(\\S+)`).exec(s);
  return m ? m[1]!.replace(/[,\]]$/, '') : null;
};

const hexValue = (s: string, n: number, what: string): bigint => {
  const v = s.replace(/^0x/i, '');
  if (!/^[0-9a-f]{1,16}$/i.test(v)) throw new IngestError(n, `${what} ${JSON.stringify(s)} is not a 64-bit hex value`);
  return BigInt(`0x${v}`);
};

/** `ingest dmesg`: a kernel log → observed events (all or nothing). */
export const ingestDmesg = (text: string, options: IngestOptions = {}): IngestResult => {
  const at = options.at ?? new Date().toISOString();
  const host = options.host ?? 'local';
  const actor = options.actor ?? { uid: 0, comm: 'isogroup-ingest' };
  const warnings: string[] = [];
  const warned = new Set<string>();
  const warnOnce = (w: string): void => {
    if (!warned.has(w)) warnings.push(w);
    warned.add(w);
  };
  const events: IngestEvent[] = [];
  let cmdline: string | null = null;
  let kernel: string | null = null;
  const lines = text.split(/\r?\n/);
  const meta = (n: number, p: Prefix): IngestMeta => ({
    at: p.wallClock ?? at,
    actor,
    host,
    observed: true,
    source: 'dmesg',
    line: n,
    ...(p.kernelTime !== null ? { kernelTime: p.kernelTime } : {}),
  });
  const note = (n: number, p: Prefix, data: Record<string, unknown>): void => {
    events.push({ type: 'KernelMessage', data: { device: null, ...data, message: p.body.trim() }, meta: meta(n, p) });
  };

  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i]!;
    if (raw.trim() === '') continue;
    const p = splitPrefix(raw, warnOnce);
    const b = p.body;
    let m: RegExpExecArray | null;

    if ((m = /^Linux version (\S+)/.exec(b))) {
      kernel = m[1]!;
      note(n, p, { kind: 'kernel-release', kernel });
      continue;
    }
    if ((m = /^Kernel command line:\s*(.*)$/.exec(b))) {
      cmdline = m[1]!.trim();
      note(n, p, { kind: 'cmdline' });
      continue;
    }
    if (/Adding to iommu group|Adding device \S+ to group/.test(b)) {
      m = new RegExp(`^\\S+ (${BDF}): Adding to iommu group (\\d+)\\s*$`, 'i').exec(b) ?? new RegExp(`^iommu: Adding device (${BDF}) to group (\\d+)\\s*$`, 'i').exec(b);
      if (!m) throw new IngestError(n, `malformed "Adding to iommu group" line: ${JSON.stringify(b.slice(0, 80))}`);
      note(n, p, { device: fullBdf(m[1]!), kind: 'iommu-group', group: Number(m[2]) });
      continue;
    }
    if ((m = new RegExp(`\\b(${BDF}): group (\\d+) is not viable`, 'i').exec(b))) {
      note(n, p, { device: fullBdf(m[1]!), kind: 'group-not-viable', group: Number(m[2]) });
      continue;
    }
    if (/AMD-Vi: Event logged \[/.test(b)) {
      let evText = b;
      if (/Event logged \[\s*$/.test(b) && i + 1 < lines.length) {
        // Some kernels print the event in two log lines: "Event logged [" then "IO_PAGE_FAULT …]".
        evText = `${b.trimEnd()}${splitPrefix(lines[i + 1]!, warnOnce).body.trim()}`;
        i++;
      }
      m = /AMD-Vi: Event logged \[([A-Z_]+)\s*([^\]]*)\]/.exec(evText);
      if (!m) throw new IngestError(n, `malformed AMD-Vi event (cut off?): ${JSON.stringify(b.slice(0, 80))}`);
      const type = m[1]!;
      const fields = m[2]!;
      if (type !== 'IO_PAGE_FAULT' && type !== 'ILLEGAL_DEV_TABLE_ENTRY') {
        const d = field(fields, 'device');
        note(n, { ...p, body: evText }, { device: d && new RegExp(`^${BDF}$`, 'i').test(d) ? fullBdf(d) : null, kind: 'iommu-event', event: type });
        continue;
      }
      const dev = field(fields, 'device') ?? new RegExp(`^\\S+ (${BDF}): AMD-Vi`, 'i').exec(evText)?.[1] ?? null;
      const address = field(fields, 'address');
      if (dev === null || !new RegExp(`^${BDF}$`, 'i').test(dev)) throw new IngestError(n, `AMD-Vi ${type} without a device (device=BB:DD.F or a "driver DDDD:BB:DD.F:" prefix)`);
      if (address === null) throw new IngestError(n, `AMD-Vi ${type} without address=`);
      const flagsText = field(fields, 'flags');
      const flags = flagsText === null ? 0 : Number(hexValue(flagsText, n, 'flags'));
      const pasid = field(fields, 'pasid');
      const domain = field(fields, 'domain');
      events.push({
        type: 'FaultRecorded',
        data: {
          device: fullBdf(dev),
          iova: hex(hexValue(address, n, 'address')),
          access: flags & 0x20 ? 'w' : 'r',
          pasid: pasid === null ? null : Number(hexValue(pasid, n, 'pasid')),
          reason: type === 'ILLEGAL_DEV_TABLE_ENTRY' ? 'DOMAIN' : 'MAPPING',
          flags: [type, ...AMD_FLAGS.filter(([bit]) => flags & bit).map(([, name]) => name), ...(domain ? [`domain=${domain}`] : [])],
          source: 'observed',
          message: evText.trim(),
        },
        meta: meta(n, p),
      });
      continue;
    }
    if (/DMAR: ?\[/.test(b) && /Request device/.test(b)) {
      m = new RegExp(
        `DMAR: ?\\[(DMA Read|DMA Write|INTR-REMAP)(?: (NO_PASID|PASID (?:0x)?[0-9a-f]+))?\\] Request device \\[(${BDF})\\](?: PASID (?:0x)?([0-9a-f]+))? fault (addr|index) (?:0x)?([0-9a-f]+)\\s*(?:\\[fault reason (0x[0-9a-f]+|\\d+)\\]\\s*(.*))?$`,
        'i',
      ).exec(b.trim());
      if (!m) throw new IngestError(n, `malformed DMAR fault (cut off?): ${JSON.stringify(b.slice(0, 90))}`);
      const device = fullBdf(m[3]!);
      if (m[1] === 'INTR-REMAP') {
        note(n, p, { device, kind: 'interrupt-remapping-fault' });
        continue;
      }
      let reasonCode = m[7] ?? null;
      let reasonText = m[8]?.trim() ?? null;
      if (reasonCode === null) {
        // Old kernels print the reason on the next line: "DMAR:[fault reason 12] …" (decimal).
        const next = i + 1 < lines.length ? splitPrefix(lines[i + 1]!, warnOnce).body : '';
        const r = /DMAR: ?\[fault reason (0x[0-9a-f]+|\d+)\]\s*(.*)$/i.exec(next);
        if (r) {
          reasonCode = r[1]!;
          reasonText = r[2]!.trim();
          i++;
        }
      }
      const code = reasonCode === null ? null : reasonCode.startsWith('0x') ? parseInt(reasonCode, 16) : parseInt(reasonCode, 10);
      const pasidText = m[2]?.startsWith('PASID') ? m[2].slice(6) : (m[4] ?? null);
      events.push({
        type: 'FaultRecorded',
        data: {
          device,
          iova: hex(hexValue(m[6]!, n, 'fault addr')),
          access: m[1] === 'DMA Write' ? 'w' : 'r',
          pasid: pasidText === null ? null : Number(hexValue(pasidText, n, 'PASID')),
          reason: code === null ? 'UNKNOWN' : INTEL_DOMAIN_REASONS.has(code) ? 'DOMAIN' : INTEL_MAPPING_REASONS.has(code) ? 'MAPPING' : 'UNKNOWN',
          flags: code === null ? [] : [`fault-reason-0x${code.toString(16).padStart(2, '0')}`, ...(reasonText ? [reasonText] : [])],
          source: 'observed',
          message: b.trim(),
        },
        meta: meta(n, p),
      });
      continue;
    }
    // Arm SMMUv3 (arm_smmu_dump_event): "event: %s client: %s sid: %#x ssid: %#x iova: %#llx ipa: %#llx",
    // then "%s %s %s %s \"%s\"%s%s stag: %#x" (priv/unpriv, inst/data, read/write, s1/s2, class).
    if ((m = /\bevent: (\S+) client: (.+?) sid: (0x[0-9a-f]+|0) ssid: (0x[0-9a-f]+|0)(?: iova: (0x[0-9a-f]+|0) ipa: (0x[0-9a-f]+|0))?(?: fetch_addr: (0x[0-9a-f]+|0))?\s*$/i.exec(b))) {
      const [, event, client, sid, ssid, iova] = m;
      const bdf = new RegExp(`^${BDF}$`, 'i').test(client!) ? fullBdf(client!) : null;
      const device = bdf ?? (client === '(unassigned sid)' ? null : client!);
      if (iova === undefined || device === null) {
        note(n, p, { device, kind: 'iommu-event', event, sid, ssid });
        continue;
      }
      const next = i + 1 < lines.length ? splitPrefix(lines[i + 1]!, warnOnce).body : '';
      const detail = /\b(priv|unpriv) (inst|data) (read|write) (s1|s2) "([^"]*)"/.exec(next);
      if (detail) i++;
      const ssidNum = Number(hexValue(ssid!, n, 'ssid'));
      events.push({
        type: 'FaultRecorded',
        data: {
          device,
          iova: hex(hexValue(iova, n, 'iova')),
          access: detail?.[3] === 'write' ? 'w' : 'r',
          pasid: ssidNum === 0 ? null : ssidNum,
          reason: 'MAPPING',
          flags: [event!, `sid=${sid}`, ...(detail ? [detail[1]!, detail[2]!, detail[4]!, detail[5]!] : ['access-unknown'])],
          source: 'observed',
          message: b.trim(),
        },
        meta: meta(n, p),
      });
      continue;
    }
    // Arm SMMU (v1/v2, arm_smmu_context_fault): the context bank faulted; the line names no device.
    if ((m = /Unhandled context fault: fsr=(0x[0-9a-f]+), iova=(0x[0-9a-f]+), fsynr=(0x[0-9a-f]+), cbfrsynra=(0x[0-9a-f]+), cb=(\d+)/i.exec(b))) {
      note(n, p, { kind: 'iommu-event', event: 'context-fault', fsr: m[1], iova: m[2], fsynr: m[3], cbfrsynra: m[4], cb: Number(m[5]) });
      continue;
    }
    if ((m = new RegExp(`^\\S+ (${BDF}): (.*\\bACS\\b.*)$`).exec(b))) {
      note(n, p, { device: fullBdf(m[1]!), kind: 'acs' });
      continue;
    }
  }
  return { events, warnings, cmdline, kernel };
};

/**
 * `lspci` output → observed events. Reads what people actually paste: `-v`, `-vv`, `-vvv`
 * (with or without root), `-nn` / `-n` ids, `-D` domains, `-P` / `-PP` paths, `-k` drivers,
 * the kernel's `IOMMU group: N` (or `Flags: … IOMMU group N` of `-v`), the classic
 * `IOMMU Group N 00:1f.0 …` listings, and dumps mangled by e-mail: `> ` quoting,
 * quoted-printable soft breaks, hard-wrapped long lines, `-x` hex bytes, `...` elisions.
 *
 * Three passes: undo the e-mail (QP, quoting, indentation), join wrapped lines back onto the line
 * they continue, then read device blocks. Any line that cannot belong to lspci output is an
 * error naming its line number, and nothing is emitted.
 */
import { parsePciFunction } from '../../domain/encoding.js';
import type { AcsBit, PciKind } from '../../domain/state.js';
import { readMmioLine, withMmio } from './mmio.js';
import { IngestError, buildEvents, newFunction, type IngestOptions, type IngestResult, type PciFunctionInfo } from './model.js';
import { readResetFacts, resetFactEvents } from './reset-facts.js';
import { ACS_ENHANCED_BITS, acsRegisters } from './acs-registers.js';

interface Line {
  /** 1-based line number in the input (of the first physical line, for joined lines). */
  readonly n: number;
  text: string;
}

const ADDR = '(?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]';
const HEADER = new RegExp(`^(${ADDR})((?:/(?:[0-9a-f]{2}:)?[0-9a-f]{2}\\.[0-7])*)\\s+(\\S.*)$`, 'i');
const LISTING = /^IOMMU [Gg]roup (\d+)(?::|\s)\s*(.*)$/;
const LISTING_HEAD = /^IOMMU [Gg]roup (\d+):?\s*$/;
const HEX_BYTES = /^[0-9a-f]{2,3}:(?: [0-9a-f]{2}){1,16}\s*$/i;
const ELISION = /^\s*(?:\.{3,}|\[\.{3}\]|…|\[snip\]|<snip>)\s*$/i;
const LOOKS_LIKE_ADDRESS = /^(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}(?:\.|\s|$)/i;
const CMDLINE = /(?:^|\s)(?:BOOT_IMAGE=\S+|pcie_acs_override=\S+)/;

const isPrompt = (t: string): boolean => /\blspci\b/.test(t) && !HEADER.test(t);
const isCmdline = (t: string): boolean => CMDLINE.test(t) || /^Kernel command line:/.test(t);

/** Quoted-printable (`=\n` soft breaks, `=3D`): decoded only when the text clearly is QP. */
const undoQuotedPrintable = (physical: readonly string[], text: string): Line[] => {
  const qp = /=3D|=20|=09/.test(text) && physical.some((l) => /[^=]=$/.test(l));
  const out: Line[] = [];
  for (let i = 0; i < physical.length; i++) {
    const n = i + 1;
    let s = physical[i]!;
    if (qp) {
      while (/[^=]=$|^=$/.test(s) && i + 1 < physical.length) s = s.slice(0, -1) + physical[++i]!;
      s = s.replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    }
    out.push({ n, text: s });
  }
  return out;
};

const headerLike = (t: string): boolean => HEADER.test(t) || LISTING.test(t);

/** Removes e-mail quoting (`> `) and a code-block indentation, both measured on the first header. */
const unquote = (lines: Line[]): void => {
  let depth = 0;
  let indent = 0;
  for (const l of lines) {
    const q = /^(?:> ?)+/.exec(l.text);
    const rest = q ? l.text.slice(q[0].length) : l.text;
    if (headerLike(rest.trimStart())) {
      depth = q ? (q[0].match(/>/g) ?? []).length : 0;
      indent = rest.length - rest.trimStart().length;
      break;
    }
  }
  for (const l of lines) {
    let s = l.text;
    for (let d = 0; d < depth && s.startsWith('>'); d++) s = s.slice(s.startsWith('> ') ? 2 : 1);
    const ws = s.length - s.trimStart().length;
    l.text = s.slice(Math.min(ws, indent)).replace(/\s+$/, '');
  }
};

type Kind = 'blank' | 'header' | 'listing' | 'hex' | 'elision' | 'prompt' | 'cmdline' | 'detail' | 'stray';

const classify = (t: string): Kind => {
  if (t === '') return 'blank';
  if (/^\s/.test(t)) return ELISION.test(t) ? 'elision' : 'detail';
  if (HEADER.test(t)) return 'header';
  if (LISTING.test(t)) return 'listing';
  if (HEX_BYTES.test(t)) return 'hex';
  if (ELISION.test(t)) return 'elision';
  if (isCmdline(t)) return 'cmdline';
  if (isPrompt(t)) return 'prompt';
  return 'stray';
};

/** Joins hard-wrapped continuations (a line at column 0 that is nothing else) onto the line before. */
const joinWrapped = (lines: readonly Line[]): { line: Line; kind: Kind }[] => {
  const out: { line: Line; kind: Kind }[] = [];
  for (const l of lines) {
    const kind = classify(l.text);
    const prev = out[out.length - 1];
    if (kind === 'stray' && prev && (prev.kind === 'header' || prev.kind === 'detail' || prev.kind === 'listing') && !LOOKS_LIKE_ADDRESS.test(l.text)) {
      prev.line.text = `${prev.line.text} ${l.text.trim()}`;
      continue;
    }
    out.push({ line: { n: l.n, text: l.text }, kind });
  }
  return out;
};

interface Block {
  readonly line: number;
  /** Path components after the first (`-P`: "00.0", `-PP`: "03:00.0"). */
  readonly path: readonly string[];
  /** First component with its domain: DDDD:BB:DD.F. */
  readonly first: string;
  readonly rest: string;
  readonly details: Line[];
  /** `-x`/`-xxx`/`-xxxx` hex dump lines of the block (config space bytes). */
  hex?: Line[];
}

interface Listed {
  readonly line: number;
  readonly id: string;
  readonly group: number;
  readonly rest: string;
}

const fullId = (addr: string): string => (addr.length === 7 ? `0000:${addr}` : addr).toLowerCase();

const EXPRESS_KINDS: readonly [RegExp, PciKind][] = [
  [/^Root Port\b/, 'root-port'],
  [/^Upstream Port\b/, 'switch-upstream'],
  [/^Downstream Port\b/, 'switch-downstream'],
  [/^Legacy Endpoint\b/, 'legacy-endpoint'],
  [/^Endpoint\b/, 'endpoint'],
  [/^Root Complex Integrated Endpoint\b/, 'rc-endpoint'],
  // An event collector never provides ACS; on its root bus it groups exactly like an RCiEP.
  [/^Root Complex Event Collector\b/, 'rc-endpoint'],
  [/^PCI-Express to PCI\/PCI-X Bridge\b/, 'pcie-to-pci-bridge'],
  [/^PCI\/PCI-X to PCI-Express Bridge\b/, 'pci-to-pcie-bridge'],
];

const ACS_NAMES: readonly [string, AcsBit][] = [
  ['SrcValid', 'SV'],
  ['TransBlk', 'TB'],
  ['ReqRedir', 'RR'],
  ['CmpltRedir', 'CR'],
  ['UpstreamFwd', 'UF'],
  ['EgressCtrl', 'EC'],
  ['DirectTrans', 'DT'],
];

const acsBits = (text: string, n: number, what: string): AcsBit[] => {
  const out: AcsBit[] = [];
  let seen = 0;
  for (const [name, bit] of ACS_NAMES) {
    const m = new RegExp(`\\b${name}([+-])`).exec(text);
    if (!m) continue;
    seen++;
    if (m[1] === '+') out.push(bit);
  }
  if (seen < ACS_NAMES.length) throw new IngestError(n, `${what} lists ${seen} of the 7 ACS bits (${ACS_NAMES.map((x) => x[0]).join(' ')}): cut off?`);
  return out;
};

const int = (s: string, n: number, what: string): number => {
  const v = s.replace(/[,;]$/, '');
  if (!/^\d{1,9}$/.test(v)) throw new IngestError(n, `${what}: ${JSON.stringify(v)} is not a group number`);
  return Number(v);
};

/** `Class name [cccc]: Vendor Device [vvvv:dddd] (rev xx)` (or `cccc: vvvv:dddd` with -n). */
const parseRest = (f: PciFunctionInfo, rest: string, n: number): void => {
  const m = /^(.+?)(?: \[([0-9a-f]{4})\])?: (.*)$/i.exec(rest);
  if (!m) throw new IngestError(n, `malformed device header: expected "<class>: <vendor> <device>" after the address, got ${JSON.stringify(rest.slice(0, 60))}`);
  const cls = m[1]!.trim();
  let body = m[3]!;
  if (/^[0-9a-f]{4}$/i.test(cls)) {
    f.classCode = cls.toLowerCase();
    const ids = /^([0-9a-f]{4}):([0-9a-f]{4})\b/i.exec(body);
    if (ids) {
      f.vendorId = ids[1]!.toLowerCase();
      f.deviceId = ids[2]!.toLowerCase();
    }
  } else {
    f.className = cls;
    if (m[2]) f.classCode = m[2].toLowerCase();
    const ids = [...body.matchAll(/\[([0-9a-f]{4}):([0-9a-f]{4})\]/gi)].pop();
    if (ids) {
      f.vendorId = ids[1]!.toLowerCase();
      f.deviceId = ids[2]!.toLowerCase();
      body = body.replace(ids[0], '');
    }
    f.name = body.replace(/\s*\((?:rev [0-9a-f]+|prog-if [^)]*\]?)\)/gi, '').replace(/\s+/g, ' ').trim() || null;
  }
  if (f.classCode === '0604' || f.classCode === '0607' || cls === 'PCI bridge' || cls === 'CardBus bridge') f.bridge = true;
};

interface DetailState {
  details: number;
  /** A `-v` or deeper block (Flags:, Control: or Capabilities: lines): the capability list is printed. */
  verbose: boolean;
  control: boolean;
  denied: boolean;
  acsTitle: number;
  acsCap: AcsBit[] | null;
  acsCtl: AcsBit[] | null;
  /** Config-space offset of the ACS extended capability (from its `Capabilities: [off]` title). */
  acsAt: number | null;
}

const readDetail = (f: PciFunctionInfo, st: DetailState, l: Line, warnings: string[]): void => {
  const t = l.text.trim();
  const n = l.n;
  st.details++;
  readResetFacts(f, t);
  let m: RegExpExecArray | null;
  if ((m = /^IOMMU group:\s*(\S+)/.exec(t))) setGroup(f, int(m[1]!, n, 'IOMMU group'), n);
  else if (/^Flags:/.test(t)) {
    st.verbose = true;
    if ((m = /\bIOMMU group (\S+)/.exec(t))) setGroup(f, int(m[1]!, n, 'IOMMU group'), n);
  }
  else if (/^Bus:/.test(t)) {
    m = /^Bus: primary=([0-9a-f]{2}), secondary=([0-9a-f]{2}), subordinate=([0-9a-f]{2})\b/i.exec(t);
    if (!m) throw new IngestError(n, `malformed Bus line ${JSON.stringify(t.slice(0, 60))}: expected "Bus: primary=BB, secondary=BB, subordinate=BB"`);
    f.busRange = { primary: parseInt(m[1]!, 16), secondary: parseInt(m[2]!, 16), subordinate: parseInt(m[3]!, 16) };
    f.bridge = true;
    if (f.busRange.subordinate < f.busRange.secondary) throw new IngestError(n, `Bus line: subordinate ${m[3]} is below secondary ${m[2]}`);
  } else if (/^Capabilities: <access denied>/.test(t)) {
    st.denied = true;
    st.verbose = true;
  } else if ((m = /^Capabilities: \[[0-9a-f]+(?: v\d+)?\] (.*)$/i.exec(t))) {
    st.verbose = true;
    const title = m[1]!;
    const ex = /^Express (?:\(v\d+\) )?(.*)$/.exec(title);
    if (ex) {
      const hit = EXPRESS_KINDS.find(([re]) => re.test(ex[1]!));
      if (hit) f.express = hit[1];
      else warnings.push(`line ${n}: ${f.id}: unknown PCIe port type ${JSON.stringify(ex[1]!.slice(0, 40))}; kind taken from the class`);
    }
    if (/^Access Control Services/.test(title)) {
      st.acsTitle = n;
      st.acsAt = parseInt(/^Capabilities: \[([0-9a-f]+)/i.exec(t)![1]!, 16);
    }
  } else if ((m = /^ACSCap:\s*(.*)$/.exec(t))) st.acsCap = acsBits(m[1]!, n, 'ACSCap');
  else if ((m = /^ACSCtl:\s*(.*)$/.exec(t))) st.acsCtl = acsBits(m[1]!, n, 'ACSCtl');
  else if ((m = /^Kernel driver in use:\s*(\S+)/.exec(t))) f.driver = m[1]!;
  else if (/^Control:/.test(t)) {
    st.control = true;
    st.verbose = true;
  } else readMmioLine(f, t, n);
};

const setGroup = (f: PciFunctionInfo, g: number, n: number): void => {
  if (f.group !== null && f.group !== g) throw new IngestError(n, `${f.id}: IOMMU group ${g} contradicts group ${f.group} given earlier`);
  f.group = g;
};

/** Parses lspci output (see the module comment); throws IngestError naming the line on bad input. */
export const parseLspci = (text: string): { functions: PciFunctionInfo[]; warnings: string[]; cmdline: string | null } => {
  const warnings: string[] = [];
  const physical = text.split(/\r?\n/);
  if (physical.length > 0 && physical[physical.length - 1] === '') physical.pop();
  const lines = undoQuotedPrintable(physical, text);
  unquote(lines);
  const logical = joinWrapped(lines);

  const blocks: Block[] = [];
  const listed: Listed[] = [];
  let cmdline: string | null = null;
  let cur: Block | null = null;
  let listingGroup: number | null = null;
  let elided = 0;
  for (const { line, kind } of logical) {
    const t = line.text;
    switch (kind) {
      case 'blank':
        cur = null;
        listingGroup = null;
        break;
      case 'header': {
        const m = HEADER.exec(t)!;
        const path = m[2] ? m[2].split('/').filter((p) => p !== '') : [];
        cur = { line: line.n, first: fullId(m[1]!), path, rest: m[3]!, details: [] };
        if (!parsePciFunction(cur.first)) throw new IngestError(line.n, `${m[1]} is not a PCI address (device numbers go up to 1f)`);
        blocks.push(cur);
        listingGroup = null;
        break;
      }
      case 'listing': {
        cur = null;
        const head = LISTING_HEAD.exec(t);
        if (head) {
          listingGroup = Number(head[1]);
          break;
        }
        const m = LISTING.exec(t)!;
        const entry = HEADER.exec(m[2]!.trim());
        if (!entry) throw new IngestError(line.n, `IOMMU group listing: expected a device after the group number, got ${JSON.stringify(m[2]!.slice(0, 60))}`);
        listed.push({ line: line.n, id: fullId(entry[1]!), group: Number(m[1]), rest: entry[3]! });
        listingGroup = null;
        break;
      }
      case 'detail': {
        const trimmed = t.trim();
        if (cur === null && listingGroup !== null) {
          const entry = HEADER.exec(trimmed);
          if (entry) listed.push({ line: line.n, id: fullId(entry[1]!), group: listingGroup, rest: entry[3]! });
          break;
        }
        if (cur === null) throw new IngestError(line.n, `${JSON.stringify(trimmed.slice(0, 60))} belongs to no device: a device header like "00:1f.0 ISA bridge: …" must come first (cut off?)`);
        cur.details.push(line);
        break;
      }
      case 'hex':
        if (cur !== null) (cur.hex ??= []).push(line);
        break;
      case 'prompt':
        break;
      case 'elision':
        elided++;
        break;
      case 'cmdline':
        cmdline = t.replace(/^Kernel command line:\s*/, '').trim();
        break;
      case 'stray':
        throw new IngestError(
          line.n,
          LOOKS_LIKE_ADDRESS.test(t)
            ? `malformed device header ${JSON.stringify(t.slice(0, 60))} (cut off?)`
            : `not lspci output: ${JSON.stringify(t.slice(0, 60))} (expected a device header like "00:1f.0 ISA bridge: …", an indented detail line, or "IOMMU Group N …")`,
        );
    }
  }
  if (elided > 0) warnings.push(`${elided} elided part(s) ("...") in the input: devices left out there are not modelled`);
  if (blocks.length === 0 && listed.length === 0) throw new IngestError(null, 'no PCI device found in the input (expected lspci output)');

  // Resolve -P paths: a component without a bus number sits on its parent bridge's secondary bus.
  const byPath = new Map<string, { block: Block; id: string | null; st: DetailState; f: PciFunctionInfo | null }>();
  const keyOf = (b: Block): string => [b.first, ...b.path].join('/');
  for (const b of blocks) {
    const key = keyOf(b);
    if (byPath.has(key)) throw new IngestError(b.line, `${key} is listed twice`);
    byPath.set(key, { block: b, id: null, st: { details: 0, verbose: false, control: false, denied: false, acsTitle: 0, acsCap: null, acsCtl: null, acsAt: null }, f: null });
  }
  const functions = new Map<string, PciFunctionInfo>();
  const order: PciFunctionInfo[] = [];
  const resolve = (key: string): string => {
    const rec = byPath.get(key)!;
    if (rec.id !== null) return rec.id;
    const b = rec.block;
    let id: string;
    if (b.path.length === 0) id = b.first;
    else {
      const last = b.path[b.path.length - 1]!;
      const parentKey = key.slice(0, key.lastIndexOf('/'));
      const parent = byPath.get(parentKey);
      if (/^[0-9a-f]{2}:/i.test(last)) id = `${b.first.slice(0, 5)}${last.toLowerCase()}`;
      else {
        const sec = parent ? (readBlock(parent).busRange?.secondary ?? null) : null;
        if (sec === null) throw new IngestError(b.line, `cannot tell the bus number of ${key}: its bridge ${parentKey} is not in the input or printed no "Bus:" line (use lspci -PP, or -v)`);
        id = `${b.first.slice(0, 5)}${sec.toString(16).padStart(2, '0')}:${last.toLowerCase()}`;
      }
      if (!parsePciFunction(id)) throw new IngestError(b.line, `${key}: ${last} is not a PCI address`);
    }
    rec.id = id;
    return id;
  };
  const readBlock = (rec: { block: Block; f: PciFunctionInfo | null; st: DetailState }): PciFunctionInfo => {
    if (rec.f) return rec.f;
    const b = rec.block;
    const f = newFunction(b.first, b.line);
    rec.f = f;
    parseRest(f, b.rest, b.line);
    for (const d of b.details) readDetail(f, rec.st, d, warnings);
    return f;
  };
  for (const [key, rec] of byPath) {
    const f = readBlock(rec);
    const id = resolve(key);
    if (functions.has(id)) throw new IngestError(rec.block.line, `${id} is listed twice`);
    const real: PciFunctionInfo = { ...f, id };
    if (rec.block.path.length > 0) {
      const parentKey = key.slice(0, key.lastIndexOf('/'));
      if (byPath.has(parentKey)) real.parent = resolve(parentKey);
    }
    finish(real, rec.st, rec.block);
    acsFromHex(real, rec.st, rec.block, warnings);
    rec.f = real;
    functions.set(id, real);
    order.push(real);
  }

  // A verbose dump prints at least one detail line for every device; a device without any,
  // among devices that have them, is where the dump was cut.
  const verbose = [...byPath.values()].some((r) => r.st.verbose);
  if (verbose) {
    const bare = blocks.find((b) => b.details.length === 0);
    if (bare) throw new IngestError(bare.line, `${[bare.first, ...bare.path].join('/')} has no detail lines while the others do: the dump looks truncated`);
  }

  for (const l of listed) {
    let f = functions.get(l.id);
    if (!f) {
      f = newFunction(l.id, l.line);
      parseRest(f, l.rest, l.line);
      functions.set(l.id, f);
      order.push(f);
    }
    setGroup(f, l.group, l.line);
  }
  return { functions: order, warnings, cmdline };
};

/** Settles what the detail lines leave open: is the capability list known, what ACS is there. */
const finish = (f: PciFunctionInfo, st: DetailState, b: Block): void => {
  f.capsKnown = st.verbose && !st.denied;
  if ((st.acsCap === null) !== (st.acsCtl === null)) {
    throw new IngestError(st.acsTitle || b.line, `${f.id}: ${st.acsCap ? 'ACSCap without ACSCtl' : 'ACSCtl without ACSCap'} (cut off?)`);
  }
  if (!f.capsKnown) f.acs = 'unknown';
  else if (st.acsCap && st.acsCtl) f.acs = { cap: st.acsCap, ctl: st.acsCtl };
  else if (st.acsTitle > 0) {
    // -vv prints the ACS bits right under the title; without them the block was cut.
    if (st.control) throw new IngestError(st.acsTitle, `${f.id}: Access Control Services without its ACSCap/ACSCtl lines (cut off?)`);
    f.acs = 'unknown';
  } else f.acs = null;
};

/** The bytes of a block's hex dump by config-space offset (`-xxxx` reaches the extended capabilities). */
const hexBytes = (b: Block): Map<number, number> => {
  const out = new Map<number, number>();
  for (const l of b.hex ?? []) {
    const [head, ...bytes] = l.text.trim().split(/\s+/);
    const base = parseInt(head!.slice(0, -1), 16);
    bytes.forEach((x, i) => out.set(base + i, parseInt(x, 16)));
  }
  return out;
};

/**
 * pciutils prints only the seven classic ACS bits (ls-ecaps.c cap_acs: ACSCap/ACSCtl with
 * SrcValid … DirectTrans); the ACS Enhanced capability and its controls are visible only in a hex
 * dump of the extended config space (`lspci -xxxx`). When the dump covers the ACS registers, they
 * are read from it: the enhanced bits are added, and without ACSCap/ACSCtl lines (`-v`) the
 * classic bits come from it too. A dump that disagrees with the printed bits is only warned about.
 */
const acsFromHex = (f: PciFunctionInfo, st: DetailState, b: Block, warnings: string[]): void => {
  if (st.acsAt === null || !b.hex) return;
  const bytes = hexBytes(b);
  const at = st.acsAt;
  const word = (o: number): number | null => {
    const lo = bytes.get(at + o);
    const hi = bytes.get(at + o + 1);
    return lo === undefined || hi === undefined ? null : lo | (hi << 8);
  };
  const cap = word(4);
  const ctl = word(6);
  if (cap === null || ctl === null) return;
  const regs = acsRegisters(cap, ctl);
  const classic = (bits: readonly AcsBit[]): string => bits.filter((x) => !ACS_ENHANCED_BITS.includes(x)).join(',');
  if (f.acs !== null && f.acs !== 'unknown') {
    if (classic(f.acs.cap) !== classic(regs.cap) || classic(f.acs.ctl) !== classic(regs.ctl)) {
      warnings.push(`line ${st.acsTitle}: ${f.id}: the hex dump's ACS registers (cap ${cap.toString(16).padStart(4, '0')}, ctl ${ctl.toString(16).padStart(4, '0')}) disagree with ACSCap/ACSCtl; the printed bits are kept`);
      return;
    }
    f.acs = { cap: [...f.acs.cap, ...regs.cap.filter((x) => ACS_ENHANCED_BITS.includes(x))], ctl: [...f.acs.ctl, ...regs.ctl.filter((x) => ACS_ENHANCED_BITS.includes(x))] };
  } else if (f.acs === 'unknown' && !st.denied) f.acs = regs;
};

/** `ingest lspci`: lspci output → observed events (all or nothing). */
export const ingestLspci = (text: string, options: IngestOptions = {}): IngestResult => {
  const { functions, warnings, cmdline } = parseLspci(text);
  const events = withMmio(buildEvents(functions, 'lspci', options, cmdline, warnings), functions);
  events.push(...resetFactEvents(functions, events));
  return { events, warnings, cmdline };
};

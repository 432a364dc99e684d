/**
 * ACS Enhanced (issue 15, item 1): the ACS Enhanced capability bit and its controls in the ACS
 * fact, and what each rule set makes of them. Mainline (linux-classic) never reads them. The ACS
 * rework series reads two of them when it decides a bus's isolation (v2 16/16, v3 11/11 "PCI:
 * Check ACS Extended flags for pci_bus_isolated()"): DSP_MT_RR on a root port (v2: and a
 * downstream port), DSP_MT_RR and USP_MT_RR on every downstream port of a switch. Without the ACS
 * Enhanced capability they are assumed (v2 15/16, v3 10/11: pci_acs_ctrl_mask()); a port with no
 * ACS capability at all has none of them.
 */
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parseCommand } from '../../domain/commands.js';
import { explainSync } from '../../projections/index.js';
import { createEngine } from '../../src/engine.js';
import { groupSets } from '../helpers.js';
import { ACS_ON, NO_ACS, host, hostBridge, invariants, linuxIommu, ok, pci, refused, type Cmd } from './kit.js';

const HB = 'pci0000:00';
const ROOT = [linuxIommu(), hostBridge()];
const RULES = ['linux-classic', 'linux-acs-rework-v2', 'linux-acs-rework-v3'] as const;
type Rules = (typeof RULES)[number];
const under = (rules: string, ...cmds: Cmd[]) => host({ type: 'host.boot', kernel: '6.17.0', rules }, ...cmds);

/** The classic controls on, with ACS Enhanced and the given enhanced controls on. */
const enhanced = (ctl: string): Cmd => ({ acs: { cap: 'SV,TB,RR,CR,UF,DT,ENHANCED', ctl: `SV,RR,CR,UF${ctl ? `,${ctl}` : ''}` } });
const ALL_MT = 'DSP_MT_RR,USP_MT_RR,UNCLAIMED_RR';

const RP = '0000:00:01.0';
const USP = '0000:01:00.0';
const DSP_A = '0000:02:00.0';
const DSP_B = '0000:02:03.0';
const A = '0000:03:00.0';
const B = '0000:04:00.0';

/** Root port (ACS on) → switch: USP, two DSPs with `dsp` ACS, an endpoint below each. */
const aSwitch = (dsp: Cmd): Cmd[] => [
  ...ROOT,
  pci(RP, HB, 'root-port', ACS_ON),
  pci(USP, RP, 'switch-upstream'),
  pci(DSP_A, USP, 'switch-downstream', dsp),
  pci(A, DSP_A, 'endpoint', {}, { name: 'A' }),
  pci(DSP_B, USP, 'switch-downstream', dsp),
  pci(B, DSP_B, 'endpoint', {}, { name: 'B' }),
];

const APART = [[RP], [USP], [DSP_A, A], [DSP_B, B]];
const SEPARATE = [[RP], [USP], [DSP_A], [DSP_B], [A], [B]];
const DSPS_TOGETHER = [[RP], [USP], [DSP_A, DSP_B, A, B]];
const USP_TOO = [[RP], [USP, DSP_A, DSP_B, A, B]];

describe('a switch whose downstream ports have ACS on', () => {
  const cases: [string, Cmd, Record<Rules, string[][]>][] = [
    ['without ACS Enhanced: the enhanced controls are assumed', ACS_ON, { 'linux-classic': SEPARATE, 'linux-acs-rework-v2': SEPARATE, 'linux-acs-rework-v3': SEPARATE }],
    ['with ACS Enhanced and DSP_MT_RR, USP_MT_RR on', enhanced(ALL_MT), { 'linux-classic': SEPARATE, 'linux-acs-rework-v2': SEPARATE, 'linux-acs-rework-v3': SEPARATE }],
    ['with ACS Enhanced, UNCLAIMED_RR off ("rejecting requests with error is still isolation")', enhanced('DSP_MT_RR,USP_MT_RR'), { 'linux-classic': SEPARATE, 'linux-acs-rework-v2': SEPARATE, 'linux-acs-rework-v3': SEPARATE }],
    ['with ACS Enhanced, DSP_MT_RR off: the ports reach each other\'s MMIO', enhanced('USP_MT_RR,UNCLAIMED_RR'), { 'linux-classic': SEPARATE, 'linux-acs-rework-v2': DSPS_TOGETHER, 'linux-acs-rework-v3': DSPS_TOGETHER }],
    ['with ACS Enhanced, USP_MT_RR off: the upstream port\'s MMIO is reachable too', enhanced('DSP_MT_RR,UNCLAIMED_RR'), { 'linux-classic': SEPARATE, 'linux-acs-rework-v2': USP_TOO, 'linux-acs-rework-v3': USP_TOO }],
    ['with ACS Enhanced and every enhanced control off', enhanced(''), { 'linux-classic': SEPARATE, 'linux-acs-rework-v2': USP_TOO, 'linux-acs-rework-v3': USP_TOO }],
  ];
  describe.each(cases)('%s', (_name, dsp, expected) => {
    test.each(RULES)('%s', (rules) => {
      const h = under(rules, ...aSwitch(dsp));
      expect(groupSets(h)).toEqual(expected[rules]);
      invariants(h);
    });
  });

  test('the reason names the rule set, the port and the control; explain shows it and the port\'s entry', () => {
    const h = under('linux-acs-rework-v3', ...aSwitch(enhanced('DSP_MT_RR')));
    expect(h.state.devices.get(B)!.reason).toEqual({
      kind: 'bus',
      bridge: USP,
      isolation: 'pcie-non-isolated',
      via: USP,
      acs: { port: DSP_A, bits: ['USP_MT_RR'], rules: 'linux-acs-rework-v3', why: `${DSP_A} has ACS Enhanced with USP_MT_RR off, so requests from below it can reach the upstream port's MMIO` },
    });
    const e = explainSync(h.state, h.log, { device: B });
    expect(e.membership).toBe(
      `${B} joined group 1 because ${DSP_A} has ACS Enhanced with USP_MT_RR off, so requests from below it can reach the upstream port's MMIO ` +
        `(linux-acs-rework-v3 requires USP_MT_RR, the USP Memory Target Access Control Request Redirect): ${USP} and everything below it share a group (like ${USP}) [rule set linux-acs-rework-v3, kernel 6.17.0]`,
    );
    const dspAdded = h.log.find((x) => x.type === 'DeviceAdded' && (x.data as { device: string }).device === DSP_A)!.pos;
    expect(e.chain.map((c) => c.pos)).toContain(dspAdded);
  });

  test('DSP_MT_RR off leaves the upstream port out: the reason says switch-dsp-non-isolated and names DSP_MT_RR', () => {
    const h = under('linux-acs-rework-v2', ...aSwitch(enhanced('USP_MT_RR')));
    expect(h.state.devices.get(B)!.reason).toMatchObject({ kind: 'bus', isolation: 'switch-dsp-non-isolated', acs: { port: DSP_A, bits: ['DSP_MT_RR'], rules: 'linux-acs-rework-v2' } });
    expect(explainSync(h.state, h.log, { device: B }).membership).toMatch(/requires DSP_MT_RR, the DSP Memory Target Access Control Request Redirect\): all downstream ports of switch 0000:01:00\.0 and everything below them share a group/);
  });

  test('device.acs turning DSP_MT_RR off changes the groups at the next boot (groups form once per boot)', () => {
    const h = under('linux-acs-rework-v3', ...aSwitch(enhanced(ALL_MT)));
    expect(groupSets(h)).toEqual(SEPARATE);
    ok(h, { type: 'device.acs', device: DSP_B, ctl: 'SV,RR,CR,UF,USP_MT_RR' });
    expect(h.state.devices.get(DSP_B)!.pci!.acs).toEqual({ cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT', 'ENHANCED'], ctl: ['SV', 'RR', 'CR', 'UF', 'USP_MT_RR'] });
    expect(groupSets(h)).toEqual(SEPARATE);
    ok(h, { type: 'host.boot', kernel: '6.17.0', rules: 'linux-acs-rework-v3' });
    expect(groupSets(h)).toEqual(DSPS_TOGETHER);
  });
});

describe('a switch whose downstream ports have no ACS capability', () => {
  const expected: Record<Rules, string[][]> = {
    'linux-classic': APART,
    // pci_acs_enabled(dsp, PCI_ACS_USP_MT_RR) is false without an ACS capability: the USP joins
    'linux-acs-rework-v2': USP_TOO,
    'linux-acs-rework-v3': USP_TOO,
  };
  test.each(RULES)('%s', (rules) => {
    const h = under(rules, ...aSwitch(NO_ACS));
    expect(groupSets(h)).toEqual(expected[rules]);
    invariants(h);
  });
  test('the reason says the port has no ACS capability and names USP_MT_RR', () => {
    const h = under('linux-acs-rework-v2', ...aSwitch(NO_ACS));
    expect(h.state.devices.get(A)!.reason).toMatchObject({ kind: 'bus', bridge: USP, isolation: 'pcie-non-isolated', acs: { port: DSP_A, bits: ['USP_MT_RR'], why: `${DSP_A} has no ACS capability, so nothing keeps requests from below it off the upstream port's MMIO` } });
  });
  test('a kernel quirk that says the ports isolate answers for the enhanced controls too', () => {
    const h = under('linux-acs-rework-v3', ...aSwitch({ acs: null, acsQuirk: true }));
    expect(groupSets(h)).toEqual(SEPARATE);
  });
});

describe('a root port with ACS on and an endpoint below it', () => {
  const EP = '0000:01:00.0';
  const topo = (rp: Cmd): Cmd[] => [...ROOT, pci(RP, HB, 'root-port', rp), pci(EP, RP, 'endpoint')];
  const cases: [string, Cmd, Record<Rules, string[][]>][] = [
    ['without ACS Enhanced', ACS_ON, { 'linux-classic': [[RP], [EP]], 'linux-acs-rework-v2': [[RP], [EP]], 'linux-acs-rework-v3': [[RP], [EP]] }],
    ['with ACS Enhanced and DSP_MT_RR on', enhanced('DSP_MT_RR'), { 'linux-classic': [[RP], [EP]], 'linux-acs-rework-v2': [[RP], [EP]], 'linux-acs-rework-v3': [[RP], [EP]] }],
    // "The DSP Memory Target also applies to the Root Port ... If upstream directed transactions can reach the root port MMIO then it is not isolated."
    ['with ACS Enhanced and DSP_MT_RR off', enhanced('USP_MT_RR,UNCLAIMED_RR'), { 'linux-classic': [[RP], [EP]], 'linux-acs-rework-v2': [[RP, EP]], 'linux-acs-rework-v3': [[RP, EP]] }],
  ];
  describe.each(cases)('%s', (_name, rp, expected) => {
    test.each(RULES)('%s', (rules) => {
      const h = under(rules, ...topo(rp));
      expect(groupSets(h)).toEqual(expected[rules]);
      invariants(h);
    });
  });
  test('the reason names the root port and DSP_MT_RR', () => {
    const h = under('linux-acs-rework-v2', ...topo(enhanced('')));
    expect(h.state.devices.get(EP)!.reason).toEqual({
      kind: 'bus',
      bridge: RP,
      isolation: 'pcie-non-isolated',
      via: RP,
      acs: { port: RP, bits: ['DSP_MT_RR'], rules: 'linux-acs-rework-v2', why: `${RP} has ACS Enhanced with DSP_MT_RR off, so requests from below it can reach its own MMIO` },
    });
  });
  test('v3: a root port without an ACS capability stays isolated (nothing to read)', () => {
    const h = under('linux-acs-rework-v3', ...topo(NO_ACS));
    expect(groupSets(h)).toEqual([[RP], [EP]]);
  });
});

describe('the ACS fact carries the enhanced bits', () => {
  test('device.add and device.acs take them; a bit of the other register is refused naming it', () => {
    const cmd = pci(RP, HB, 'root-port', { acs: { cap: 'SV,RR,CR,UF,ENHANCED', ctl: 'SV,RR,CR,UF,IORB,DSP_MT_RB,DSP_MT_RR,USP_MT_RB,USP_MT_RR,UNCLAIMED_RR' } });
    const parsed = parseCommand(cmd) as { pci: { acs: unknown } };
    expect(parsed.pci.acs).toEqual({ cap: ['SV', 'RR', 'CR', 'UF', 'ENHANCED'], ctl: ['SV', 'RR', 'CR', 'UF', 'IORB', 'DSP_MT_RB', 'DSP_MT_RR', 'USP_MT_RB', 'USP_MT_RR', 'UNCLAIMED_RR'] });
    expect(() => parseCommand(pci(RP, HB, 'root-port', { acs: { cap: 'SV,DSP_MT_RR', ctl: '' } }))).toThrow(/pci\.acs\.cap: DSP_MT_RR is an ACS Enhanced control: it belongs in ctl/);
    expect(() => parseCommand(pci(RP, HB, 'root-port', { acs: { cap: 'SV', ctl: 'ENHANCED' } }))).toThrow(/pci\.acs\.ctl: ENHANCED is the ACS Enhanced capability bit: it belongs in cap/);
    const h = host(...ROOT, cmd);
    refused(h, { type: 'device.acs', device: RP, ctl: 'SV,ENHANCED' }, 'EINVAL', /ctl: ENHANCED is the ACS Enhanced capability bit/);
  });

  test('round trip: the log replays to the same state, and the stored event keeps the bits as given', () => {
    const h = under('linux-acs-rework-v2', ...aSwitch(enhanced('USP_MT_RR')));
    ok(h, { type: 'device.acs', device: DSP_A, ctl: 'SV,RR,CR,UF,DSP_MT_RR,USP_MT_RR' });
    const added = h.log.find((e) => e.type === 'DeviceAdded' && (e.data as { device: string }).device === DSP_A)!;
    expect((added.data as { pci: { acs: unknown } }).pci.acs).toEqual({ cap: 'SV,TB,RR,CR,UF,DT,ENHANCED', ctl: 'SV,RR,CR,UF,USP_MT_RR' });
    expect(h.log.at(-1)!.data).toEqual({ device: DSP_A, ctl: 'SV,RR,CR,UF,DSP_MT_RR,USP_MT_RR' });
    const replay = createEngine({ keepLog: false });
    replay.apply(JSON.parse(JSON.stringify(h.log)) as typeof h.log);
    expect(replay.state.devices).toEqual(h.state.devices);
    expect(replay.state.groups).toEqual(h.state.groups);
  });

  test('a log without the bits groups exactly as before under every rule set (the worked example)', () => {
    const lines = readFileSync(new URL('../fixtures/desktop-gpu-passthrough.jsonl', import.meta.url), 'utf8').trim().split('\n');
    const plain = createEngine();
    for (const l of lines) plain.exec(JSON.parse(l) as Cmd);
    // linux-classic ignores ACS Enhanced: the same log with the capability and every enhanced control off groups identically
    const withBits = createEngine();
    for (const l of lines) withBits.exec(JSON.parse(l.replaceAll('"cap":"SV,TB,RR,CR,UF,DT"', '"cap":"SV,TB,RR,CR,UF,DT,ENHANCED"')) as Cmd);
    expect([...withBits.state.devices.values()].filter((d) => d.pci?.acs?.cap.includes('ENHANCED')).length).toBeGreaterThan(0);
    expect(groupSets(withBits)).toEqual(groupSets(plain));
  });
});

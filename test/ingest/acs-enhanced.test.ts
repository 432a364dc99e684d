/**
 * ACS Enhanced in ingest. sysfs serves the config space, so the ACS Capability register's bit 7
 * (ACS Enhanced) and the Control register's bits 7-12 are read from it. lspci prints only the
 * seven classic bits (pciutils ls-ecaps.c cap_acs, unchanged as of December 2025:
 * "ACSCap:\tSrcValid%c TransBlk%c ReqRedir%c CmpltRedir%c UpstreamFwd%c EgressCtrl%c DirectTrans%c");
 * with `-xxxx` its hex dump holds the extended config space, and the registers are read from there.
 * The dumps below are written in lspci's own hex format (lspci.c show_hex_dump: "%02x:" at every
 * 16th byte, then " %02x" per byte), from a config image built by the sysfs fixture builder.
 */
import { describe, expect, test } from '@jest/globals';
import { parseConfig, parseLspci } from '../../src/ingest/index.js';
import { acsRegisters } from '../../src/ingest/acs-registers.js';
import { configImage, DESKTOP } from '../fixtures/sysfs/build.js';

// PCI_ACS_* (cap): SV 0x1, TB 0x2, RR 0x4, CR 0x8, UF 0x10, EC 0x20, DT 0x40, ENHANCED 0x80.
// PCI_ACS_* (ctl, with ENHANCED): IORB 0x80, DSP_MT_RB 0x100, DSP_MT_RR 0x200, USP_MT_RB 0x400, USP_MT_RR 0x800, UNCLAIMED_RR 0x1000.
const CAP_ENHANCED = 0x5f | 0x80;
const CTL_MT_RR = 0x1d | 0x200 | 0x800; // SV RR CR UF + DSP_MT_RR + USP_MT_RR

describe('the ACS registers as bits', () => {
  test('with ACS Enhanced: the capability bit and every control of bits 7-12', () => {
    expect(acsRegisters(CAP_ENHANCED, 0x1d | 0x1f80)).toEqual({
      cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT', 'ENHANCED'],
      ctl: ['SV', 'RR', 'CR', 'UF', 'IORB', 'DSP_MT_RB', 'DSP_MT_RR', 'USP_MT_RB', 'USP_MT_RR', 'UNCLAIMED_RR'],
    });
    expect(acsRegisters(CAP_ENHANCED, CTL_MT_RR).ctl).toEqual(['SV', 'RR', 'CR', 'UF', 'DSP_MT_RR', 'USP_MT_RR']);
  });
  test('without ACS Enhanced, control bits 7-12 are reserved and not read', () => {
    expect(acsRegisters(0x5f, 0x1d | 0x1f80)).toEqual({ cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT'], ctl: ['SV', 'RR', 'CR', 'UF'] });
  });
});

describe('sysfs config space', () => {
  test('a root port whose ACS capability has ACS Enhanced', () => {
    const c = parseConfig(configImage({ ...DESKTOP.devices[2]!, acs: { cap: CAP_ENHANCED, ctl: CTL_MT_RR } }), '0000:00:01.0', []);
    expect(c.acs).toEqual({ cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT', 'ENHANCED'], ctl: ['SV', 'RR', 'CR', 'UF', 'DSP_MT_RR', 'USP_MT_RR'] });
  });
  test('one without it reads as before', () => {
    const c = parseConfig(configImage(DESKTOP.devices[2]!), '0000:00:01.0', []);
    expect(c.acs).toEqual({ cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT'], ctl: ['SV', 'RR', 'CR', 'UF'] });
  });
});

/** A config image as `lspci -xxxx` prints it. */
const hexDump = (buf: Buffer): string[] => {
  const out: string[] = [];
  for (let i = 0; i < buf.length; i += 16) out.push(`${i.toString(16).padStart(2, '0')}: ${[...buf.subarray(i, i + 16)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`);
  return out;
};

const T = '\t';
const rootPort = (hex: string[], acsLines = true): string =>
  [
    '00:01.0 PCI bridge [0604]: Intel Corporation 6th-10th Gen Core Processor PCIe Controller (x16) [8086:1901] (rev 07) (prog-if 00 [Normal decode])',
    `${T}Control: I/O+ Mem+ BusMaster+`,
    `${T}Bus: primary=00, secondary=01, subordinate=01, sec-latency=0`,
    `${T}Capabilities: [40] Express (v2) Root Port (Slot+), MSI 00`,
    `${T}Capabilities: [148 v1] Access Control Services`,
    ...(acsLines
      ? [
          `${T}${T}ACSCap:${T}SrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans+`,
          `${T}${T}ACSCtl:${T}SrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-`,
        ]
      : []),
    `${T}Kernel driver in use: pcieport`,
    ...hex,
    '',
  ].join('\n');

describe('lspci -vvv -xxxx', () => {
  const image = configImage({ ...DESKTOP.devices[2]!, acs: { cap: CAP_ENHANCED, ctl: CTL_MT_RR } });

  test('the hex dump adds the ACS Enhanced bits to the printed ones', () => {
    const { functions, warnings } = parseLspci(rootPort(hexDump(image)));
    expect(functions[0]!.acs).toEqual({ cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT', 'ENHANCED'], ctl: ['SV', 'RR', 'CR', 'UF', 'DSP_MT_RR', 'USP_MT_RR'] });
    expect(warnings).toEqual([]);
  });

  test('-xxx (256 bytes) does not reach the ACS capability: the printed bits stand', () => {
    const { functions } = parseLspci(rootPort(hexDump(image.subarray(0, 256))));
    expect(functions[0]!.acs).toEqual({ cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT'], ctl: ['SV', 'RR', 'CR', 'UF'] });
  });

  test('-v with -xxxx (no ACSCap/ACSCtl lines): every bit comes from the dump', () => {
    const { functions } = parseLspci(rootPort(hexDump(image), false).replace(`${T}Control: I/O+ Mem+ BusMaster+\n`, ''));
    expect(functions[0]!.acs).toEqual({ cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT', 'ENHANCED'], ctl: ['SV', 'RR', 'CR', 'UF', 'DSP_MT_RR', 'USP_MT_RR'] });
  });

  test('a dump that disagrees with ACSCap/ACSCtl: the printed bits are kept, with a warning', () => {
    const other = configImage({ ...DESKTOP.devices[2]!, acs: { cap: CAP_ENHANCED, ctl: 0x01 } });
    const { functions, warnings } = parseLspci(rootPort(hexDump(other)));
    expect(functions[0]!.acs).toEqual({ cap: ['SV', 'TB', 'RR', 'CR', 'UF', 'DT'], ctl: ['SV', 'RR', 'CR', 'UF'] });
    expect(warnings.join('\n')).toMatch(/0000:00:01\.0: the hex dump's ACS registers \(cap 00df, ctl 0001\) disagree with ACSCap\/ACSCtl; the printed bits are kept/);
  });
});

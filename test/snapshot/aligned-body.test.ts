/**
 * Snapshot format 2: the packed interval maps travel in an 8-byte-aligned raw section after the v8
 * stream, and the header is padded so that the body starts aligned in the file. A body read at an
 * unaligned offset (a database row's bytes, say) is decoded from one aligned copy; both read the
 * same state. A format-1 snapshot is no longer read (the store replays instead, with a warning).
 */
import { describe, expect, test } from '@jest/globals';
import { createEngine } from '../../src/engine.js';
import { encodeStateJson } from '../../src/snapshot/codec.js';
import { SNAPSHOT_FORMAT, SnapshotProblem, decodeHeader, decodeSnapshot, encodeSnapshot } from '../../src/snapshot/format.js';

const host = (): ReturnType<typeof createEngine> => {
  let seq = 0;
  const e = createEngine({ keepLog: false, newId: () => `00000000-0000-4000-8000-${(++seq).toString(16).padStart(12, '0')}` });
  const cmds = [
    { type: 'iommu.add', iommu: 'i0', pageSizes: '0x1000' },
    { type: 'device.add', device: 'pci0000:00', parent: null },
    { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
    { type: 'device.add', device: '0000:01:00.0', parent: '0000:00:01.0', pci: { kind: 'endpoint' } },
    { type: 'driver.bind', device: '0000:01:00.0', driver: 'vfio-pci' },
    { type: 'ctx.open', ctx: 'c' },
    { type: 'device.bind', device: '0000:01:00.0', ctx: 'c' },
    { type: 'domain.alloc', domain: 'd', ctx: 'c', iommu: 'i0' },
    { type: 'device.attach', device: '0000:01:00.0', domain: 'd' },
  ];
  for (let i = 0; i < 300; i++) cmds.push({ type: 'map', domain: 'd', iova: `0x${(i * 0x3000).toString(16)}`, length: '0x1000', pa: `0x${(0x100000000 + i * 0x1000).toString(16)}`, prot: 'rw' } as never);
  for (const c of cmds) expect(e.exec(c).ok).toBe(true);
  return e;
};

const text = (s: Parameters<typeof encodeStateJson>[0]): string => encodeStateJson(s).toString();

describe('snapshot format 2', () => {
  const state = host().state;
  const bytes = encodeSnapshot({ stream: 'host-local', pos: state.pos, id: null, hash: null, at: state.at }, { state, timeline: new Float64Array([1, 0]) });

  test('the body starts 8-byte aligned and reads back the same state', () => {
    const h = decodeHeader(bytes);
    expect(h.format).toBe(SNAPSHOT_FORMAT);
    expect(h.headerEnd % 8).toBe(0);
    const back = decodeSnapshot(Buffer.from(bytes)).content.state;
    expect(text(back)).toBe(text(state));
    expect(back.domains.get('d')!.mappings.stab(0x3000n)?.aux).toBe(0x100001000n);
  });

  test('an unaligned copy of the bytes reads back the same state', () => {
    const shifted = Buffer.alloc(bytes.length + 3);
    bytes.copy(shifted, 3);
    const back = decodeSnapshot(shifted.subarray(3)).content.state;
    expect(text(back)).toBe(text(state));
  });

  test('a format-1 snapshot is no longer read', () => {
    const old = Buffer.from(bytes.toString('latin1').replace(`"format":${SNAPSHOT_FORMAT},`, '"format":1,'), 'latin1');
    expect(() => decodeSnapshot(old)).toThrow(SnapshotProblem);
    expect(() => decodeSnapshot(old)).toThrow(/format 1 is no longer read/);
  });
});

/**
 * Issue 14, point 4: the dashboard's DMA box asks GET /api/can-dma, which answers as can-dma does
 * on hardware MSI windows (SPEC §8; iommu.c IOMMU_RESV_MSI): writes allowed whatever the domain,
 * reads denied as reserved.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import { get, writer } from './helpers.js';

const EP = '0000:01:00.0';
let store: EventStore;
let srv: DashboardServer;

beforeAll(async () => {
  store = createMemoryStore();
  const m = writer(store, 'local');
  await m.load();
  const results = await m.execMany([
    { type: 'iommu.add', iommu: 'vtd0', personality: 'linux', reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] },
    { type: 'device.add', device: 'pci0000:00', parent: null, bus: 'pci', iommu: 'vtd0', pci: { kind: 'host-bridge' } },
    { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', bus: 'pci', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
    { type: 'device.add', device: EP, parent: '0000:00:01.0', bus: 'pci', pci: { kind: 'endpoint' } },
    { type: 'driver.bind', device: EP, driver: 'vfio-pci' },
    { type: 'ctx.open', ctx: 'c1', kind: 'iommufd' },
    { type: 'device.bind', device: EP, ctx: 'c1' },
  ]);
  expect(results.filter((r) => !r.ok)).toEqual([]);
  srv = await createServer({ store, port: 0, token: 'msi-token', heartbeatMs: 100, log: () => {} });
});

afterAll(async () => {
  await srv?.close();
  await store?.close();
});

describe('GET /api/can-dma on the hardware MSI window', () => {
  test('blocked group: a write into the window is allowed (msi), a read is denied (reserved), elsewhere blocked', async () => {
    const w = (await get(srv.url, `/api/can-dma?device=${EP}&iova=0xfee00040&access=w`)).json;
    expect(w).toMatchObject({ allowed: true, reason: 'msi', region: { kind: 'msi' } });
    expect(w.summary).toMatch(/interrupt request into the hardware MSI window/);
    const r = (await get(srv.url, `/api/can-dma?device=${EP}&iova=0xfee00040&access=r`)).json;
    expect(r).toMatchObject({ allowed: false, reason: 'reserved', region: { kind: 'msi' } });
    expect(r.summary).toMatch(/cannot be read/);
    const other = (await get(srv.url, `/api/can-dma?device=${EP}&iova=0x1000&access=w`)).json;
    expect(other).toMatchObject({ allowed: false, reason: 'blocked' });
  });
});

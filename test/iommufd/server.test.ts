/** The dashboard server and page carry the new verdicts and the memlock budget (module iommufd.js). */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import { get, writer } from '../server/helpers.js';

const NIC = '0000:01:00.0';
let store: EventStore;
let srv: DashboardServer;

beforeAll(async () => {
  store = createMemoryStore();
  const m = writer(store, 'vm');
  await m.load();
  const results = await m.execMany([
    { type: 'iommu.add', iommu: 'smmu0' },
    { type: 'device.add', device: 'pci0000:00', iommu: 'smmu0' },
    { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
    { type: 'device.add', device: NIC, parent: '0000:00:01.0' },
    { type: 'driver.bind', device: NIC, driver: 'vfio-pci' },
    { type: 'ctx.open', ctx: 'vmm' },
    { type: 'ctx.option', ctx: 'vmm', rlimitMode: 'user', memlock: '0x10000000' },
    { type: 'device.bind', device: NIC, ctx: 'vmm' },
    { type: 'hwpt.alloc', domain: 's2', ctx: 'vmm', device: NIC, nestParent: true },
    { type: 'map', domain: 's2', iova: '0x0', length: '0x200000', pa: '0x100000000', prot: 'rw' },
    { type: 'viommu.alloc', viommu: 'vi', ctx: 'vmm', device: NIC, parent: 's2' },
    // The kernel attaches a vIOMMU's nested domain only to a device with a vDEVICE in it.
    { type: 'vdevice.alloc', viommu: 'vi', device: NIC, virtId: '0x8' },
    { type: 'hwpt.alloc', domain: 's1', ctx: 'vmm', device: NIC, parent: 'vi' },
    { type: 'device.attach', device: NIC, domain: 's1' },
  ]);
  expect(results.filter((r) => !r.ok)).toEqual([]);
  srv = await createServer({ store, port: 0, token: 'secret-token-for-tests', heartbeatMs: 100, log: () => undefined });
});

afterAll(async () => {
  await srv?.close();
  await store?.close();
});

describe('dashboard: iommufd', () => {
  test('the page module is served, and the page imports it', async () => {
    const mod = await get(srv.url, '/iommufd.js');
    expect({ status: mod.status, type: mod.headers['content-type'] }).toEqual({ status: 200, type: 'text/javascript; charset=utf-8' });
    expect(mod.text).toContain('export const VerdictNotes');
    expect((await get(srv.url, '/app.js')).text).toContain("from './iommufd.js'");
  });

  test('can-dma answers nested with its stage 2 and explains "at most"; the group shows the memlock budget', async () => {
    const v = (await get(srv.url, `/api/can-dma?host=vm&device=${NIC}&iova=0x1000&access=w`)).json;
    expect(v).toMatchObject({ allowed: true, reason: 'nested', domain: 's1', stage2: 's2' });
    expect(v.summary).toMatch(/allowed AT MOST/);
    const g = (await get(srv.url, '/api/groups/1?host=vm')).json;
    expect(g.memlock).toEqual({ mode: 'user', limit: '0x10000000', pinned: '0x200000' });
  });
});

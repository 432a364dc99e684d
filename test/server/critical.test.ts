/**
 * Host-critical devices over HTTP: the demo host's onboard NIC carries the host's own network;
 * GET /api/devices flags it, GET /api/what-if under the ACS rework lists the devices that would
 * newly share its group, GET /api/fleet/what-if names the host.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import { get, writeDemo } from './helpers.js';

const NIC = '0000:04:00.0';
let store: EventStore;
let srv: DashboardServer;

beforeAll(async () => {
  store = createMemoryStore();
  const m = await writeDemo(store, 'local');
  expect((await m.exec({ type: 'device.critical', device: NIC, role: 'host-nic', detail: 'the default route' })).ok).toBe(true);
  srv = await createServer({ store, port: 0, token: 'critical-token-01' });
});
afterAll(async () => {
  await srv?.close();
  await store?.close();
});

describe('host-critical devices in the API', () => {
  test('the device listing and the tree carry the mark; other devices carry no critical key', async () => {
    for (const path of ['/api/devices', '/api/devices?fields=tree']) {
      const r = await get(srv.url, path);
      const devices = r.json.devices as { id: string; critical?: unknown }[];
      expect(devices.find((d) => d.id === NIC)?.critical).toEqual([{ role: 'host-nic', detail: 'the default route' }]);
      expect(devices.filter((d) => 'critical' in d).map((d) => d.id)).toEqual([NIC]);
    }
  });

  test('what-if and the fleet what-if list the new sharing; at a position before the mark there is none', async () => {
    const w = await get(srv.url, '/api/what-if?rules=linux-acs-rework-v2');
    expect(w.status).toBe(200);
    expect(w.json.critical).toEqual([expect.objectContaining({ device: NIC, marks: [{ role: 'host-nic', detail: 'the default route' }], newlyShared: expect.arrayContaining(['0000:06:00.0']) })]);
    const pos = w.json.pos as number;
    const before = await get(srv.url, `/api/what-if?rules=linux-acs-rework-v2&at=${pos - 1}`);
    expect(before.json.critical).toEqual([]);
    const f = await get(srv.url, '/api/fleet/what-if?rules=linux-acs-rework-v2');
    expect(f.json).toMatchObject({ critical: ['local'] });
  });
});

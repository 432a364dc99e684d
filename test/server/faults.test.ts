/**
 * GET /api/faults (the dashboard's faults panel): after the demo VM unmaps its RAM, a kernel flood
 * of 300 writes on the unmapped page (as `follow` writes them: observed, with source and kernel
 * time) is one group explained by the model — the same group as `isogroup faults --json` — and
 * one counted `dma-fault` alert; the follow status is the newest observed entry's source and
 * kernel time; `at` gives the answer as of an earlier position; a host nobody follows says so.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { faultReport } from '../../projections/index.js';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import type { Manager } from '../../src/manager.js';
import { get, writeDemo } from './helpers.js';

const GPU = '0000:0a:00.0';
let store: EventStore;
let local: Manager;
let srv: DashboardServer;
let unmapPos: number;
let from: number;
let to: number;

const fault = (i: number, iova = '0x7f001000') => ({
  type: 'FaultRecorded' as const,
  data: { device: GPU, iova, access: 'w', pasid: null, reason: 'MAPPING', flags: ['WRITE'], domain: 'vm1-ioas', source: 'kmsg' },
  meta: { source: 'kmsg', kernelTime: `3128.${String(100000 + i).padStart(6, '0')}` },
});

beforeAll(async () => {
  store = createMemoryStore();
  local = await writeDemo(store, 'local');
  const r = await local.exec({ type: 'unmap', domain: 'vm1-ioas', iova: '0x0', length: '0x80000000', actor: { uid: 1000 } });
  expect(r.ok).toBe(true);
  unmapPos = local.state.pos;
  const pos = await local.import(Array.from({ length: 300 }, (_, i) => fault(i)) as never);
  from = pos[0]!;
  to = pos[pos.length - 1]!;
  srv = await createServer({ store, port: 0 });
});

afterAll(async () => {
  await srv?.close();
  await store?.close();
});

describe('GET /api/faults', () => {
  test('the flood is one explained group, one counted alert, and the follow status names the newest observed entry', async () => {
    const r = await get(srv.url, '/api/faults?host=local');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ host: 'local', pos: to, total: 300, disagreeing: 0 });
    expect(r.json.groups).toHaveLength(1);
    expect(r.json.groups[0]).toMatchObject({
      device: GPU,
      domain: 'vm1-ioas',
      access: 'w',
      reason: 'unmapped',
      agrees: true,
      low: '0x7f001000',
      count: 300,
      first: { pos: from, kernelTime: '3128.100000' },
      last: { pos: to, kernelTime: '3128.100299' },
    });
    expect(r.json.groups[0].sentence).toMatch(/^the model agrees it was denied: denied, nothing is mapped there through domain vm1-ioas/);
    expect(r.json.groups[0].line).toMatch(new RegExp(`^${GPU} write 0x7f001000 ×300 \\(#${from}–#${to}, `));
    // The same groups as `isogroup faults --json` (which is faultReport over the log).
    const cli = await faultReport(local.log.read(1, to), { to });
    expect(r.json.groups.map(({ line: _l, ...g }: Record<string, unknown>) => g)).toEqual(JSON.parse(JSON.stringify(cli)));
    expect(r.json.alerts).toEqual([expect.objectContaining({ kind: 'dma-fault', pos: from, count: 300, lastPos: to })]);
    expect(r.json.follow).toEqual({ pos: to, at: expect.any(String), type: 'FaultRecorded', source: 'kmsg', kernelTime: '3128.100299' });
  });

  test('at an earlier position: the faults up to there; before any fault, none and no follow status', async () => {
    const mid = (await get(srv.url, `/api/faults?host=local&at=${from + 99}`)).json;
    expect(mid).toMatchObject({ pos: from + 99, total: 100, groups: [{ count: 100, last: { pos: from + 99 } }], alerts: [{ count: 100 }], follow: { pos: from + 99, kernelTime: '3128.100099' } });
    const before = (await get(srv.url, `/api/faults?host=local&at=${unmapPos}`)).json;
    expect(before).toMatchObject({ pos: unmapPos, total: 0, groups: [], alerts: [], follow: null });
  });

  test('an unknown host is a 404 with a one-line JSON error', async () => {
    const r = await get(srv.url, '/api/faults?host=nosuch');
    expect(r.status).toBe(404);
    expect(r.json.error.message).toMatch(/nosuch/);
  });
});

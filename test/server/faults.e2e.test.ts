/**
 * The faults panel in a real browser (chromium through playwright-core, like dashboard.e2e.test.ts):
 * a host with a fault flood on a page its VM unmapped shows one group of 200 faults explained
 * by the model, and the follow status (source and kernel time of the newest observed entry); when
 * a follower appends a fault the model would have allowed, the live page adds that group, marked,
 * and the status moves on; a host nobody follows says so.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import type { Manager } from '../../src/manager.js';
import { launch, skipBrowser, soon, type Browser } from './browser.js';
import { writeDemo, writer } from './helpers.js';

const suite = skipBrowser() ? describe.skip : describe;
const GPU = '0000:0a:00.0';

const fault = (i: number, iova: string, access: 'r' | 'w') => ({
  type: 'FaultRecorded' as const,
  data: { device: GPU, iova, access, pasid: null, reason: 'MAPPING', flags: [], domain: 'vm1-ioas', source: 'kmsg' },
  meta: { source: 'kmsg', kernelTime: `3128.${String(100000 + i).padStart(6, '0')}` },
});

suite('the faults panel in chromium', () => {
  let store: EventStore;
  let local: Manager;
  let srv: DashboardServer;
  let b: Browser;

  beforeAll(async () => {
    store = createMemoryStore();
    local = await writeDemo(store);
    expect((await local.exec({ type: 'unmap', domain: 'vm1-ioas', iova: '0x0', length: '0x80000000', actor: { uid: 1000 } })).ok).toBe(true);
    const ro = { type: 'map', domain: 'vm1-ioas', iova: '0x100000000', length: '0x1000', pa: '0x300000000', prot: 'r', actor: { uid: 1000 } };
    expect((await local.exec(ro)).ok).toBe(true);
    await local.import(Array.from({ length: 200 }, (_, i) => fault(i, '0x7f001000', 'w')) as never);
    const lab = writer(store, 'lab');
    await lab.load();
    expect((await lab.exec({ type: 'iommu.add', iommu: 'vtd0', personality: 'linux' })).ok).toBe(true);
    srv = await createServer({ store, port: 0 });
    b = await launch();
  }, 60_000);

  afterAll(async () => {
    await b?.close();
    await srv?.close();
    await store?.close();
  });

  test('lists the explained flood and the follow status; a new fault shows live; an unfollowed host says so', async () => {
    await b.page.goto(`${srv.url}#host=local`);
    const panel = b.page.locator('[data-testid="faults-panel"]');
    expect(await soon(panel.locator('[data-testid="faults-total"]'), (t) => t.includes('200'))).toBe('200 fault(s) in 1 group(s)');
    const group = panel.locator('[data-testid="fault-group"]');
    expect(await group.first().innerText()).toMatch(new RegExp(`${GPU} write 0x7f001000 ×200[\\s\\S]*domain vm1-ioas[\\s\\S]*the model agrees it was denied: denied, nothing is mapped there`));
    expect(await panel.locator('[data-testid="faults-follow"]').innerText()).toMatch(/last observed: #\d+ FaultRecorded from kmsg at kernel time 3128\.100199 s/);

    // A follower writes a read of 0x100000000 — which the VM mapped read-only: the model would have allowed it.
    const m = writer(store, 'local', '2026-12-05T05:00:00.000Z');
    await m.load();
    await m.import([fault(500, '0x100000000', 'r')] as never);
    expect(await soon(panel.locator('[data-testid="faults-total"]'), (t) => t.includes('201'))).toBe('201 fault(s) in 2 group(s)');
    expect(await panel.locator('[data-testid="faults-disagree"]').innerText()).toBe('1 the model would have allowed');
    expect(await group.nth(1).innerText()).toMatch(/DISAGREES: the model would have ALLOWED it/);
    expect(await soon(panel.locator('[data-testid="faults-follow"]'), (t) => t.includes('3128.100500'))).toMatch(/kernel time 3128\.100500 s/);

    await b.page.goto(`${srv.url}#host=lab`);
    await b.page.reload();
    expect(await soon(b.page.locator('[data-testid="faults-follow"]'), (t) => t.startsWith('no observed'))).toMatch(/^no observed entries: nothing follows this host/);
    expect(b.errors).toEqual([]);
  }, 60_000);
});

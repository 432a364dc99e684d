/**
 * The dashboard's reset panel in chromium: at a position inside a reset the touched devices are
 * marked in the PCI tree and the reset is listed; a selected device shows its reset scope; after
 * the reset, nothing is marked.
 */
import { afterAll, beforeAll, expect, test, describe } from '@jest/globals';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import { launch, skipBrowser, type Browser } from './browser.js';
import { writer } from './helpers.js';

const GPU = '0000:01:00.0';
const AUDIO = '0000:01:00.1';
const suite = skipBrowser() ? describe.skip : describe;

suite('reset panel in chromium', () => {
  let store: EventStore;
  let srv: DashboardServer;
  let b: Browser;
  let during = 0;

  beforeAll(async () => {
    store = createMemoryStore();
    const m = writer(store, 'local');
    await m.load();
    const acs = { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' };
    for (const c of [
      { type: 'host.boot', kernel: '7.0.0' },
      { type: 'iommu.add', iommu: 'dmar0' },
      { type: 'device.add', device: 'pci0000:00', parent: null, iommu: 'dmar0', pci: { kind: 'host-bridge' } },
      { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', pci: { kind: 'root-port', acs } },
      { type: 'device.add', device: GPU, parent: '0000:00:01.0', name: 'GPU' },
      { type: 'device.add', device: AUDIO, parent: '0000:00:01.0', name: 'GPU audio' },
      { type: 'device.reset-caps', device: AUDIO },
      { type: 'driver.bind', device: GPU, driver: 'vfio-pci' },
      { type: 'driver.bind', device: AUDIO, driver: 'vfio-pci' },
      { type: 'device.reset', device: AUDIO, method: 'bus', hold: true },
    ]) {
      expect((await m.exec(c)).ok).toBe(true);
    }
    during = m.state.pos;
    expect((await m.exec({ type: 'device.reset-done', device: AUDIO })).ok).toBe(true);
    srv = await createServer({ store, port: 0 });
    b = await launch();
  });

  afterAll(async () => {
    await b?.close();
    await srv?.close();
    await store?.close();
  });

  const idMark = (id: string): Promise<string> =>
    b.page.evaluate((dev) => {
      const el = document.querySelector(`[data-testid="tree-row"][data-device="${dev}"] .id`);
      return el ? getComputedStyle(el, '::after').content : 'missing';
    }, id);
  const waitFor = async (fn: () => Promise<boolean>, ms = 15_000): Promise<boolean> => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (await fn()) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  };

  test('inside the reset: both functions marked, the reset listed, the scope of the selected device shown', async () => {
    await b.page.goto(`${srv.url}#host=local&at=${during}&device=${AUDIO}`);
    const listed = await waitFor(async () => (await b.page.locator('[data-testid="reset-row"]').count()) === 1);
    expect([listed, b.errors]).toEqual([true, []]);
    expect(await b.page.locator('[data-testid="reset-row"]').innerText()).toContain(`reset of ${AUDIO}`);
    expect(await waitFor(async () => /fenced/.test(await idMark(GPU)))).toBe(true);
    expect(await idMark(AUDIO)).toContain('fenced');
    // The audio function has no method of its own: the panel says why.
    const panel = b.page.locator('[data-testid="reset-panel"]');
    expect(await waitFor(async () => /reset scope of 0000:01:00.1/.test(await panel.innerText().catch(() => '')))).toBe(true);
    expect(await panel.innerText()).toContain('has no reset method the kernel can use alone');
    expect(b.errors).toEqual([]);
  });

  test('after the reset nothing is marked', async () => {
    await b.page.goto(`${srv.url}#host=local&device=${GPU}`);
    await b.page.reload();
    expect(await waitFor(async () => (await b.page.locator('[data-testid="tree-row"]').count()) > 0)).toBe(true);
    expect(await waitFor(async () => !/fenced|in reset/.test(await idMark(GPU)))).toBe(true);
    expect(await b.page.locator('[data-testid="reset-row"]').count()).toBe(0);
  });
});

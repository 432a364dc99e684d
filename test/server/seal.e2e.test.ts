/**
 * The seal panel in a real browser (chromium through playwright-core, like dashboard.e2e.test.ts):
 * a host with a seal shows "verifies" with the sealed position; after the log grows it still
 * verifies and says how many entries came since; a host without a seal says so.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { createManager } from '../../src/manager.js';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { createSealer, type Sealer } from '../../src/store/sealer.js';
import type { EventStore } from '../../src/store/types.js';
import { tempDir } from '../cli/run.js';
import { launch, skipBrowser, soon, type Browser } from './browser.js';
import { writeDemo, writer } from './helpers.js';

const suite = skipBrowser() ? describe.skip : describe;

suite('the seal panel in chromium', () => {
  let store: EventStore;
  let sealer: Sealer;
  let srv: DashboardServer;
  let b: Browser;

  beforeAll(async () => {
    store = createMemoryStore();
    await writeDemo(store);
    const lab = writer(store, 'lab');
    await lab.load();
    expect((await lab.exec({ type: 'iommu.add', iommu: 'vtd0', personality: 'linux' })).ok).toBe(true);
    sealer = createSealer({ store, hosts: () => ['local'], dir: join(tempDir(), 'seals'), key: generateKeyPairSync('ed25519').privateKey, everyMs: 3_600_000, recheckMs: 0 });
    await sealer.sealNow();
    srv = await createServer({ store, port: 0, seals: sealer });
    b = await launch();
  }, 60_000);

  afterAll(async () => {
    await b?.close();
    await sealer?.close();
    await srv?.close();
    await store?.close();
  });

  test('shows the last seal and that it verifies; entries since, once the log grows; "no seal" on an unsealed host', async () => {
    await b.page.goto(`${srv.url}#host=local`);
    const panel = b.page.locator('[data-testid="seal-panel"]');
    expect(await soon(panel.locator('[data-testid="seal-verdict"]'), (t) => t === 'verifies')).toBe('verifies');
    expect(await soon(panel.locator('[data-testid="seal-last"]'), (t) => t.includes('#36'))).toMatch(/last seal: #36 at \d{4}-/);
    expect(await panel.innerText()).toContain('this server seals every 1h');

    const m = createManager({ store, host: 'local' });
    await m.load();
    expect((await m.exec({ type: 'iommu.add', iommu: 'late0', personality: 'linux' })).ok).toBe(true);
    expect(await soon(panel.locator('[data-testid="seal-last"]'), (t) => t.includes('1 entries since'))).toContain('1 entries since');
    expect(await panel.locator('[data-testid="seal-verdict"]').innerText()).toBe('verifies');

    await b.page.goto(`${srv.url}#host=lab`);
    await b.page.reload();
    expect(await soon(b.page.locator('[data-testid="seal-verdict"]'), (t) => t === 'no seal')).toBe('no seal');
    expect(b.errors).toEqual([]);
  }, 60_000);
});

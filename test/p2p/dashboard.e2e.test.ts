/**
 * The dashboard's DMA question box in a real browser (Debian's chromium through playwright-core):
 * "can A write B's BAR0?" on the worked example with its BARs draws the peer-to-peer path, the
 * port that failed to redirect marked, the switch where the request turns back down marked, and
 * the chain behind the answer includes the BAR fact.
 *
 * Without chromium the test fails and says how to install it, unless ISOGROUP_SKIP_BROWSER=1.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import { launch, skipBrowser, soon, type Browser } from '../server/browser.js';
import { writer } from '../server/helpers.js';

const lines = (name: string): Record<string, unknown>[] =>
  readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const suite = skipBrowser() ? describe.skip : describe;

suite('the DMA question box draws a peer-to-peer path', () => {
  let store: EventStore;
  let srv: DashboardServer;
  let b: Browser;

  beforeAll(async () => {
    store = createMemoryStore();
    const m = writer(store);
    await m.load();
    await m.execMany([...lines('desktop-gpu-passthrough.jsonl'), ...lines('desktop-gpu-passthrough-bars.jsonl')]);
    srv = await createServer({ store, port: 0, log: () => {} });
    b = await launch();
  });

  afterAll(async () => {
    await b?.close();
    await srv?.close();
    await store?.close();
  });

  test("can A write B's BAR0?: allowed peer-to-peer, the path drawn hop by hop", async () => {
    await b.page.goto(srv.url);
    await b.page.waitForFunction(() => document.body.dataset.busy === '0' && document.body.dataset.pos !== undefined, undefined, { timeout: 15_000 });
    await b.page.locator('[data-testid="dma-input"]').fill("can 0000:06:00.0 write 0000:04:00.0's BAR0?");
    await b.page.locator('[data-testid="dma-ask"]').click();
    const answer = b.page.locator('[data-testid="dma-answer"]');
    expect(await soon(answer.locator('.big'), (t) => /ALLOWED/.test(t))).toBe('ALLOWED');
    expect(await answer.locator('.verdict code').innerText()).toBe('peer-to-peer');

    const path = answer.locator('[data-testid="p2p-path"]');
    expect(await path.locator('.warn-text').innerText()).toBe('Peer-to-peer to BAR 0000:04:00.0:0: the IOMMU never sees this request.');
    const hops = await path.locator('li.hop code').allInnerTexts();
    expect(hops).toEqual(['0000:06:00.0', '0000:05:00.0', '0000:03:04.0', '0000:02:00.0', '0000:03:00.0', '0000:04:00.0']);
    // The downstream port without ACS is the one marked; the switch is where the request turns.
    expect(await path.locator('li.hop.failed code').allInnerTexts()).toEqual(['0000:03:04.0']);
    expect(await path.locator('li.hop.failed .flag').innerText()).toBe('no redirect');
    expect(await path.locator('li.hop.turn code').allInnerTexts()).toEqual(['0000:02:00.0']);
    expect(await path.locator('.muted').innerText()).toMatch(/downstream port 0000:03:04\.0 has no ACS capability/);
    // Drawn as boxes in reading order (the row wraps): each hop right of the one before, or below it.
    const boxes = await path.locator('li.hop').evaluateAll((els) => els.map((e) => ({ x: e.getBoundingClientRect().left, y: e.getBoundingClientRect().top })));
    for (let i = 1; i < boxes.length; i++) expect(boxes[i]!.y > boxes[i - 1]!.y || (boxes[i]!.y === boxes[i - 1]!.y && boxes[i]!.x > boxes[i - 1]!.x)).toBe(true);
    expect(await answer.locator('[data-testid="chain"]').innerText()).toMatch(/0000:04:00\.0 decodes BAR0 0xfc504000-0xfc504fff/);
    expect(b.errors).toEqual([]);
  });

  test('an address the IOMMU answers draws no path', async () => {
    await b.page.locator('[data-testid="dma-input"]').fill('can 0000:0a:00.1 write 0x1000?');
    await b.page.locator('[data-testid="dma-ask"]').click();
    const answer = b.page.locator('[data-testid="dma-answer"]');
    await soon(answer.locator('.verdict code'), (t) => t !== 'peer-to-peer');
    expect(await answer.locator('.verdict code').innerText()).not.toBe('peer-to-peer');
    expect(await answer.locator('[data-testid="p2p-path"]').count()).toBe(0);
    expect(b.errors).toEqual([]);
  });
});

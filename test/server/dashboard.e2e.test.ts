/**
 * The dashboard end to end in a real browser (Debian's chromium through playwright-core): load
 * the page over the demo host, see its groups, move the time slider back and see the earlier
 * state, ask a DMA question, append commands through the API and watch them arrive live.
 *
 * One browser for the whole file (the machine is shared). Without chromium the tests fail and
 * say how to install it, unless ISOGROUP_SKIP_BROWSER=1. The picture in docs/dashboard.png is
 * taken by `npm run report:screenshot`, not here.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import type { Locator } from 'playwright-core';
import { launch, skipBrowser, soon, type Browser } from './browser.js';
import { writeDemo, writer } from './helpers.js';

const TOKEN = 'e2e-token-0123';
const GPU = '0000:0a:00.0';
const REFUSED_BIND = 22;
const BOUND = 25;

const suite = skipBrowser() ? describe.skip : describe;

suite('dashboard in chromium', () => {
  let store: EventStore;
  let srv: DashboardServer;
  let b: Browser;

  beforeAll(async () => {
    store = createMemoryStore();
    await writeDemo(store);
    // A second host, for the host picker: a device without an IOMMU group.
    const lab = writer(store, 'lab');
    await lab.load();
    for (const c of [
      { type: 'iommu.add', iommu: 'vtd0', personality: 'linux', pageSizes: '0x1000', msiIsolation: true },
      { type: 'device.add', device: 'pci0000:00', parent: null, bus: 'pci', iommu: 'vtd0', pci: { kind: 'host-bridge' } },
      { type: 'device.add', device: '0000:00:02.0', parent: 'pci0000:00', bus: 'pci', pci: { kind: 'rc-endpoint' }, name: 'iGPU' },
      { type: 'device.add', device: 'platform-dma0', parent: null, bus: 'platform', name: 'DMA engine without an IOMMU' },
    ]) {
      expect((await lab.exec(c)).ok).toBe(true);
    }
    srv = await createServer({ store, port: 0, token: TOKEN });
    b = await launch();
  });

  afterAll(async () => {
    await b?.close();
    await srv?.close();
    await store?.close();
  });

  /** The page shows position `pos` and nothing is loading any more. */
  const posShown = (pos: number) =>
    b.page.waitForFunction((p) => document.body.dataset.pos === String(p) && document.body.dataset.busy === '0', pos, { timeout: 15_000 });
  /** Text of an element once it satisfies `ok` (panels load on their own; poll, do not race). */
  const matches = (re: RegExp) => (t: string) => re.test(t);
  const lacks = (re: RegExp) => (t: string) => !re.test(t);
  const attr = async (locator: Locator, name: string, want: string): Promise<string | null> => {
    const until = Date.now() + 10_000;
    for (;;) {
      const v = (await locator.count()) > 0 ? await locator.first().getAttribute(name) : null;
      if (v === want || Date.now() > until) return v;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const groupStatus = () => b.page.locator('[data-testid="group-status"]');
  const treeRow = (id: string) => b.page.locator(`[data-testid="tree-row"][data-device="${id}"]`);

  test('loads the page and shows the demo\'s groups, tree and audit trail', async () => {
    await b.page.goto(srv.url);
    await posShown(36);
    await expect(b.page.locator('[data-testid="group-chips"] button').count()).resolves.toBe(6);
    await expect(b.page.locator('[data-testid="counts"]').innerText()).resolves.toMatch(/12\s+devices/);
    await expect(b.page.locator('[data-testid="pos-label"]').innerText()).resolves.toMatch(/#36 of 36/);
    await expect(b.page.locator('[data-testid="host-picker"] option').allInnerTexts()).resolves.toEqual(['lab (4)', 'local (36)']);
    // The GPU: in group 1 with its audio function, vfio-pci, owned by the VM's context.
    const gpu = await soon(treeRow(GPU), matches(/qemu-vm1/));
    expect(gpu).toMatch(/vfio-pci/);
    expect(gpu).toMatch(/shared ×2/);
    expect(gpu).toMatch(/qemu-vm1 → VM vm1/);
    expect(await soon(treeRow('0000:00:01.1'), matches(/isolated/))).toMatch(/isolated/);
    expect(await soon(treeRow('0000:04:00.0').locator('.driver.kernel'), matches(/r8169/))).toBe('r8169');
    // The owned group is selected first: its members and why each is there.
    expect(await soon(groupStatus(), matches(/owned/))).toMatch(/owned by qemu-vm1 \(VM vm1\)/);
    expect(await soon(b.page.locator('[data-testid="group-card"]'), matches(/joined group 1/))).toMatch(/joined group 1 because it is a function of a multifunction device/);
    // The audit trail, newest first, refusals highlighted.
    const rows = b.page.locator('[data-testid="audit-row"]');
    expect(await attr(rows, 'data-pos', '36')).toBe('36');
    await expect(b.page.locator('[data-testid="audit-row"].refused').count()).resolves.toBe(2);
    expect(await soon(b.page.locator('[data-testid="domains"]'), matches(/vm1-ioas/))).toMatch(/vm1-ioas/);
    expect(await soon(b.page.locator('[data-testid="mappings"]'), matches(/0x0–0x7fffffff/))).toMatch(/0x0–0x7fffffff/);
  });

  test('moving the slider back shows the whole page as of that position', async () => {
    const slider = b.page.locator('[data-testid="slider"]');
    await slider.fill(String(BOUND - 1));
    await posShown(BOUND - 1);
    expect(await soon(b.page.locator('[data-testid="pos-label"]'), matches(/#24 /))).toMatch(new RegExp(`#${BOUND - 1} of 36`));
    await expect(b.page.locator('[data-testid="live"]').getAttribute('aria-pressed')).resolves.toBe('false');
    // Before the bind: group 1 viable, owned by nobody; no owner in the tree; no user domain.
    await b.page.locator('[data-testid="group-chip-1"]').click();
    expect(await soon(groupStatus(), matches(/^viable$/))).toBe('viable');
    expect(await soon(treeRow(GPU), lacks(/qemu-vm1/))).not.toMatch(/qemu-vm1/);
    expect(await soon(b.page.locator('[data-testid="domains"]'), lacks(/vm1-ioas/))).not.toMatch(/vm1-ioas/);
    expect(await attr(b.page.locator('[data-testid="audit-row"]'), 'data-pos', String(BOUND - 1))).toBe(String(BOUND - 1));
    // At the refused claim: not viable, blocked by the audio function's kernel driver.
    await slider.fill(String(REFUSED_BIND));
    await posShown(REFUSED_BIND);
    expect(await soon(groupStatus(), matches(/not viable/))).toBe('not viable');
    expect(await soon(b.page.locator('[data-testid="group-card"]'), matches(/Blocked/))).toMatch(/Blocked by kernel drivers: 0000:0a:00.1 \(snd_hda_intel\)/);
    expect(await soon(b.page.locator('[data-testid="plan"]'), matches(/rebind/))).toMatch(/0000:0a:00\.1 rebind/);
    // Back to live.
    await b.page.locator('[data-testid="live"]').click();
    await posShown(36);
    expect(await soon(groupStatus(), matches(/owned/))).toMatch(/owned by qemu-vm1/);
  });

  test('asks a DMA question and reads the verdict with its explanation chain', async () => {
    const input = b.page.locator('[data-testid="dma-input"]');
    await input.fill('can 0000:0a:00.1 write 0x1000?');
    await b.page.locator('[data-testid="dma-ask"]').click();
    const answer = b.page.locator('[data-testid="dma-answer"]');
    expect(await soon(answer.locator('.big'), matches(/ALLOWED/))).toBe('ALLOWED');
    const text = await answer.innerText();
    expect(text).toMatch(/mapped/);
    expect(text).toMatch(/pa 0x100001000/);
    expect(text).toMatch(/#25/);
    expect(text).toMatch(/ctx qemu-vm1 bound 0000:0a:00\.0/);
    await input.fill('can 0000:0a:00.0 write 0x100000000?');
    await b.page.locator('[data-testid="dma-ask"]').click();
    expect(await soon(answer.locator('.big'), matches(/DENIED/))).toBe('DENIED');
    expect(await answer.innerText()).toMatch(/unmapped/);
    // A bad question says how to ask.
    await input.fill('is it safe?');
    await b.page.locator('[data-testid="dma-ask"]').click();
    expect(await soon(b.page.locator('[data-testid="dma-error"]'), matches(/Ask like/))).toMatch(/can 0000:03:00\.1 write 0x80001000/);
  });

  test('the what-if panel recomputes the groups under another rule set, writing nothing', async () => {
    await b.page.locator('[data-testid="what-if-rules"]').selectOption('linux-acs-rework-v3');
    await b.page.locator('[data-testid="what-if-kernel"]').fill('6.17.0');
    await b.page.locator('[data-testid="what-if"] button[type="submit"]').click();
    const answer = b.page.locator('[data-testid="what-if-answer"]');
    expect(await soon(answer, matches(/under linux-acs-rework-v3 \(kernel 6\.17\.0\)/))).toMatch(/compared with linux-classic.*nothing written/);
    expect(b.errors).toEqual([]);
  });

  test('commands appended through the API (with the token) appear live', async () => {
    const post = (body: unknown) =>
      fetch(new URL('/api/commands', srv.url), { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const denied = await fetch(new URL('/api/commands', srv.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(denied.status).toBe(403);
    const r = await post([
      { type: 'device.add', device: '0000:00:14.0', parent: 'pci0000:00', bus: 'pci', pci: { kind: 'rc-endpoint' }, name: 'USB controller' },
      { type: 'device.bind', device: '0000:00:14.0', ctx: 'intruder', actor: { uid: 1001 } },
    ]);
    expect(r.status).toBe(200);
    await posShown(38);
    expect(await soon(treeRow('0000:00:14.0'), matches(/USB/))).toMatch(/USB controller/);
    expect(await soon(b.page.locator('[data-testid="pos-label"]'), matches(/#38 of 38/))).toMatch(/#38 of 38/);
    const newest = b.page.locator('[data-testid="audit-row"]');
    expect(await attr(newest, 'data-pos', '38')).toBe('38');
    expect(await newest.first().getAttribute('class')).toMatch(/refused/);
    expect(await soon(b.page.locator('[data-testid="audit-row"][data-pos="37"]'), matches(/was added/))).toMatch(/0000:00:14\.0 \(USB controller\) was added/);
    // Pinned in the past, the page stays there while the log grows; the slider's range grows.
    await b.page.locator('[data-testid="slider"]').fill('30');
    await posShown(30);
    await post({ type: 'ctx.open', ctx: 'late', kind: 'iommufd' });
    await b.page.waitForFunction(() => (document.querySelector('[data-testid="slider"]') as HTMLInputElement).max === '39');
    expect(await b.page.evaluate(() => document.body.dataset.pos)).toBe('30');
    expect(b.errors).toEqual([]);
  });

  test('the host picker switches the whole page to another host of the store', async () => {
    await b.page.locator('[data-testid="host-picker"]').selectOption('lab');
    await posShown(4);
    expect(await soon(treeRow('platform-dma0'), matches(/no group/))).toMatch(/no group/);
    await expect(b.page.locator('[data-testid="group-chips"] button').count()).resolves.toBe(1);
    expect(await soon(b.page.locator('[data-testid="pos-label"]'), matches(/#4 of 4/))).toMatch(/#4 of 4/);
    await b.page.locator('[data-testid="host-picker"]').selectOption('local');
    await posShown(39);
    expect(b.errors).toEqual([]);
  });

  test('a host-critical device is marked in the tree, and the what-if panel names the devices that would newly share its group', async () => {
    // The onboard NIC carries the host's own network: marked host-critical through the API.
    const r = await fetch(new URL('/api/commands', srv.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'device.critical', device: '0000:04:00.0', role: 'host-nic', detail: 'the default route' }),
    });
    expect(r.status).toBe(200);
    await posShown(40);
    expect(await soon(treeRow('0000:04:00.0').locator('[data-testid="critical-flag"]'), matches(/host-nic/))).toBe('host-nic');
    expect(await treeRow('0000:00:01.0').locator('[data-testid="critical-flag"]').count()).toBe(0);
    // Its group's member table says so too.
    await treeRow('0000:04:00.0').click();
    expect(await soon(b.page.locator('table.members .flag.critical'), matches(/host-nic/))).toBe('host-nic');
    await b.page.locator('[data-testid="what-if-rules"]').selectOption('linux-acs-rework-v2');
    await b.page.locator('[data-testid="what-if-kernel"]').fill('');
    await b.page.locator('[data-testid="what-if"] button[type="submit"]').click();
    const critical = b.page.locator('[data-testid="what-if-critical"]');
    expect(await soon(critical, matches(/network interface/))).toMatch(/the host's network interface 0000:04:00\.0 would newly share group \d+ with 0000:02:00\.0, 0000:03:04\.0, 0000:05:00\.0, 0000:06:00\.0, usb-hub0/);
    expect(b.errors).toEqual([]);
  });
});

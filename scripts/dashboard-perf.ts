/**
 * Responsiveness of the dashboard on a large host (about 5,000 devices and 100,000 mappings):
 * builds the host once into a file log (cached: the engine takes a few minutes), serves it
 * read-only, drives Debian's chromium, and prints the timings docs/dashboard.md reports.
 *
 *   npm run report:dashboard-perf -- [LOG] [--devices N] [--mappings N]
 *
 * Not a jest test on purpose: timings depend on the machine; they are measured and written
 * down, not asserted.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { createManager } from '../src/manager.js';
import { createServer } from '../src/server/index.js';
import { openFileStore } from '../src/store/file.js';
import { bigHostCommands } from '../test/server/bighost.js';
import { launch } from '../test/server/browser.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const devices = flag('--devices', 5000);
const mappings = flag('--mappings', 100_000);
const logPath = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a)) ?? `/tmp/isogroup-bighost-${devices}-${mappings}.jsonl`;

const ms = (t: number): number => Math.round(t);
const log = (s: string): void => void process.stderr.write(`${s}\n`);

const build = async (): Promise<void> => {
  const cmds = bigHostCommands({ devices, mappings });
  log(`building ${logPath}: ${cmds.length} commands (once; cached for later runs)`);
  await rm(logPath, { force: true });
  const store = await openFileStore(logPath);
  const m = createManager({ store });
  const t = performance.now();
  let refused = 0;
  await m.execMany(cmds, (r, i) => {
    if (!r.ok) refused++;
    if (i % 10_000 === 0) log(`  ${i} / ${cmds.length} (${ms((performance.now() - t) / 1000)} s)`);
  });
  await store.close();
  log(`built in ${ms((performance.now() - t) / 1000)} s, ${refused} refused`);
};

const main = async (): Promise<void> => {
  if (!existsSync(logPath)) await build();
  const store = await openFileStore(logPath, { readOnly: true });
  const server = await createServer({ store, port: 0 });
  const t0 = performance.now();
  const h = await server.registry.get(undefined);
  const loadMs = performance.now() - t0;
  const live = h.manager.state.pos;
  let mapCount = 0;
  for (const d of h.manager.state.domains.values()) mapCount += d.mappings.size;
  const rssMb = Math.round(process.memoryUsage().rss / 1e6);
  log(`host loaded: ${live} entries, ${h.manager.state.devices.size} devices, ${h.manager.state.groups.size} groups, ${mapCount} mappings in ${ms(loadMs)} ms`);

  const b = await launch({ width: 1600, height: 1000 });
  const page = b.page;
  const settled = (pos: number): Promise<unknown> =>
    page.waitForFunction((p) => (window as unknown as { __isogroup: { renderedPos: number } }).__isogroup.renderedPos === p && document.body.dataset.busy === '0', pos, { timeout: 120_000, polling: 'raf' });

  // First render: navigation to a settled page (tree, groups, domains, audit, all loaded).
  const tNav = performance.now();
  await page.goto(server.url);
  await page.waitForFunction((p) => (window as unknown as { __isogroup: { renderedPos: number } }).__isogroup.renderedPos === p, live, { timeout: 120_000, polling: 'raf' });
  const firstView = performance.now() - tNav;
  await settled(live);
  const firstSettled = performance.now() - tNav;
  const rows = await page.locator('[data-testid="tree-row"]').count();
  log(`first render: view ${ms(firstView)} ms, settled ${ms(firstSettled)} ms (${rows} tree rows in the DOM)`);

  // Slider moves, measured in the page: from the input event to the page settled at that position.
  const move = (target: number): Promise<{ view: number; settled: number }> =>
    page.evaluate(
      (p) =>
        new Promise<{ view: number; settled: number }>((resolve) => {
          const g = (window as unknown as { __isogroup: { renderedPos: number } }).__isogroup;
          const el = document.querySelector('[data-testid="slider"]') as HTMLInputElement;
          const t = performance.now();
          el.value = String(p);
          el.dispatchEvent(new Event('input', { bubbles: true }));
          let view = -1;
          const tick = (): void => {
            if (view < 0 && g.renderedPos === p) view = performance.now() - t;
            if (g.renderedPos === p && document.body.dataset.busy === '0') resolve({ view, settled: performance.now() - t });
            else requestAnimationFrame(tick);
          };
          requestAnimationFrame(tick);
        }),
      target,
    );
  const targets = [live - 1, Math.floor(live * 0.5), 9000, 3000, Math.floor(live * 0.9), live - 5000, 20_000, Math.floor(live * 0.5)];
  const moves: { pos: number; view: number; settled: number }[] = [];
  for (const p of targets) {
    const r = await move(p);
    moves.push({ pos: p, view: ms(r.view), settled: ms(r.settled) });
    log(`slider → #${p}: view ${ms(r.view)} ms, settled ${ms(r.settled)} ms`);
  }

  // A drag: 20 input events 30 ms apart over mapping history, then settled.
  const drag = await page.evaluate(
    (from) =>
      new Promise<number>((resolve) => {
        const g = (window as unknown as { __isogroup: { renderedPos: number } }).__isogroup;
        const el = document.querySelector('[data-testid="slider"]') as HTMLInputElement;
        let k = 0;
        const last = from + 19 * 137;
        const step = (): void => {
          el.value = String(from + k * 137);
          el.dispatchEvent(new Event('input', { bubbles: true }));
          if (++k < 20) setTimeout(step, 30);
          else {
            const t = performance.now();
            const tick = (): void => {
              if (g.renderedPos === last && document.body.dataset.busy === '0') resolve(performance.now() - t);
              else requestAnimationFrame(tick);
            };
            requestAnimationFrame(tick);
          }
        };
        step();
      }),
    Math.floor(live * 0.6),
  );
  log(`drag of 20 steps (30 ms apart): settled ${ms(drag)} ms after the last step`);

  // Back to live, then a DMA question on a VM's device, a mappings page and a tree scroll.
  await page.locator('[data-testid="live"]').click();
  await settled(live);
  const vmDevice = await page.evaluate(() => {
    const rowsEl = [...document.querySelectorAll('[data-testid="tree-row"]')];
    return rowsEl.find((r) => r.textContent?.includes('→ VM'))?.getAttribute('data-device') ?? null;
  });
  const device = vmDevice ?? [...h.manager.state.devices.values()].find((d) => d.boundCtx !== null)?.id ?? '';
  const tAsk = performance.now();
  await page.locator('[data-testid="dma-input"]').fill(`can ${device} write 0x1000?`);
  await page.locator('[data-testid="dma-ask"]').click();
  await page.locator('[data-testid="dma-answer"]').waitFor({ timeout: 60_000 });
  const askMs = performance.now() - tAsk;
  log(`DMA question (${device}): ${ms(askMs)} ms`);

  const tNext = performance.now();
  const before = await page.locator('[data-testid="mappings"] .pager span').innerText();
  await page.locator('[data-testid="mappings"] .pager button', { hasText: 'next' }).click();
  await page.waitForFunction((b0) => document.querySelector('[data-testid="mappings"] .pager span')?.textContent !== b0 && document.body.dataset.busy === '0', before, { timeout: 60_000 });
  const nextMs = performance.now() - tNext;
  log(`mappings next page: ${ms(nextMs)} ms`);

  const scroll = await page.evaluate(
    () =>
      new Promise<number>((resolve) => {
        const el = document.querySelector('[data-testid="tree"]') as HTMLElement;
        const t = performance.now();
        el.scrollTop = el.scrollHeight / 2;
        el.dispatchEvent(new Event('scroll'));
        requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t)));
      }),
  );
  log(`tree scroll to the middle: ${ms(scroll)} ms to the next frames`);

  // Server-side: a few API answers at an uncached position.
  const api = async (path: string): Promise<number> => {
    const t = performance.now();
    const r = await fetch(new URL(path, server.url));
    await r.arrayBuffer();
    return ms(performance.now() - t);
  };
  const at = Math.floor(live * 0.37);
  const apiTimes = {
    state: await api(`/api/state?at=${at}`),
    devices: await api(`/api/devices?at=${at}`),
    groups: await api(`/api/groups?at=${at}`),
    domains: await api(`/api/domains?defaults=0&at=${at}`),
    log: await api(`/api/log?to=${at}&limit=200`),
    logFiltered: await api(`/api/log?to=${live}&limit=200&only=problems`),
    mappingsDeep: await api(`/api/domains/vm0-ioas/mappings?offset=4900&limit=50`),
  };
  log(`API at #${at} (uncached): ${JSON.stringify(apiTimes)}`);

  const summary = {
    host: { entries: live, devices: h.manager.state.devices.size, groups: h.manager.state.groups.size, mappings: mapCount, loadMs: ms(loadMs), serverRssMb: rssMb },
    firstRender: { viewMs: ms(firstView), settledMs: ms(firstSettled), treeRowsInDom: rows },
    sliderMoves: moves,
    dragSettledMs: ms(drag),
    dmaQuestionMs: ms(askMs),
    mappingsNextPageMs: ms(nextMs),
    treeScrollMs: ms(scroll),
    apiMs: apiTimes,
    errors: b.errors,
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  await b.close();
  await server.close();
  await store.close();
};

await main();

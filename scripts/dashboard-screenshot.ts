/**
 * Writes docs/dashboard.png: the dashboard over the demo host in Debian's chromium, with the DMA
 * question of the README answered and the GPU's audio function selected.
 *
 *   npm run report:screenshot [-- OUT.png]
 *
 * A report, not a test: the page's behaviour is asserted in test/server/dashboard.e2e.test.ts;
 * this only takes the picture.
 */
import { fileURLToPath } from 'node:url';
import { createServer } from '../src/server/index.js';
import { createMemoryStore } from '../src/store/memory.js';
import { launch, type Browser } from '../test/server/browser.js';
import { writeDemo } from '../test/server/helpers.js';

const out = process.argv[2] ?? fileURLToPath(new URL('../../docs/dashboard.png', import.meta.url));

const store = createMemoryStore();
await writeDemo(store);
const srv = await createServer({ store, port: 0 });
let b: Browser | undefined;
try {
  b = await launch();
  const page = b.page;
  const settled = (): Promise<unknown> => page.waitForFunction(() => document.body.dataset.busy === '0', undefined, { timeout: 15_000 });
  await page.goto(srv.url);
  await settled();
  await page.locator('[data-testid="dma-input"]').fill('can 0000:0a:00.1 write 0x1000?');
  await page.locator('[data-testid="dma-ask"]').click();
  await page.locator('[data-testid="dma-answer"] .big', { hasText: 'ALLOWED' }).waitFor({ timeout: 15_000 });
  await page.locator('[data-testid="tree-row"][data-device="0000:0a:00.1"]').click();
  await settled();
  await page.waitForTimeout(200);
  await page.screenshot({ path: out });
  if (b.errors.length > 0) throw new Error(`the page reported errors:\n${b.errors.join('\n')}`);
  process.stderr.write(`wrote ${out}\n`);
} catch (err) {
  process.stderr.write(`dashboard-screenshot: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await b?.close();
  await srv.close();
  await store.close();
}

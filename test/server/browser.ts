/**
 * Debian's chromium driven by playwright-core, for the dashboard's browser tests, screenshot and
 * responsiveness measurement: the launch flags this closed network needs, a fresh profile
 * directory per launch, and a clear failure when the browser is not installed.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';

export const CHROMIUM = process.env.ISOGROUP_CHROMIUM ?? '/usr/bin/chromium';

/** Without the background-networking flags chromium keeps trying to reach Google on a closed network. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const skipBrowser = (): boolean => process.env.ISOGROUP_SKIP_BROWSER === '1';

export const assertChromium = (): void => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `chromium is not installed at ${CHROMIUM}: the dashboard's browser tests need Debian's chromium package. ` +
        'Run .ci/run (it apt-get installs chromium), or `apt-get install -y chromium`; ' +
        'set ISOGROUP_SKIP_BROWSER=1 to skip these tests on purpose.',
    );
  }
};

export interface Browser {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Errors the page raised or logged (a test asserts there are none). */
  readonly errors: string[];
  close(): Promise<void>;
}

export const launch = async (viewport = { width: 1600, height: 1000 }): Promise<Browser> => {
  assertChromium();
  const profile = await mkdtemp(join(tmpdir(), 'isogroup-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Failed requests are reported with their URL below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  return {
    context,
    page,
    errors,
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
};

/**
 * The text of the first element `locator` finds once `ok` accepts it (polled every 50 ms), or
 * whatever it shows after `ms`: the test's assertion then names what the page said.
 */
export const soon = async (locator: Locator, ok: (text: string) => boolean, ms = 10_000): Promise<string> => {
  const until = Date.now() + ms;
  for (;;) {
    const text = (await locator.count()) > 0 ? await locator.first().innerText() : '';
    if (ok(text) || Date.now() > until) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
};

// The built renderer in Chromium on the Electron transport: window.carstudio is the preload's
// bridge, carried to the main process's EngineLink (plain Node, here in the test process) with
// the real `carstudio serve` child it starts. There is no Electron binary here, so the bridge's
// IPC is Playwright's exposeFunction/evaluate instead; everything the renderer does is its own.
// Killing the engine must show the one "lost the connection" banner served mode shows, no
// toasts, and the banner must go when the link's new engine is up.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { EngineLink, startEngineWithNode } from '../src-main/electron/engine-link.ts';
import { ROOT, seedStoredImages, tmpWorkspace } from './helpers/workspace.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';

const RENDERER = path.join(ROOT, 'out', 'renderer');
const ORIGIN = 'http://carstudio.test';
const ok = hasChromium() && fs.existsSync(path.join(RENDERER, 'index.html'));
if (!ok) console.log(`skipping the Electron-bridge UI test: needs Chromium at ${CHROMIUM} and the built renderer in ${RENDERER} (npx electron-vite build)`);

/** The preload's bridge, in the page: calls go to the exposed functions, pushes come back through __carstudioPush. */
const BRIDGE = `(() => {
  const events = new Set(), conns = new Set();
  let changed = false;
  window.__carstudioPush = (kind, a, b) => {
    if (kind === 'connection') { changed = true; conns.forEach((l) => l(a)); }
    else events.forEach((l) => l(a, b));
  };
  window.carstudio = {
    request: (method, params) => window.__carstudioRequest(method, params),
    subscribe(l) { events.add(l); return () => events.delete(l); },
    onConnection(l) {
      conns.add(l);
      const asked = changed;
      window.__carstudioState().then((s) => { if (changed === asked) l(s); });
      return () => conns.delete(l);
    },
    imageBase: '${ORIGIN}/no-images/',
  };
})()`;

describe.runIf(ok)('the studio on the Electron bridge when its engine dies', () => {
  let browser: Browser;
  let link: EngineLink;
  let letRestart: () => void = () => {};
  beforeAll(async () => {
    const ws = tmpWorkspace();
    await seedStoredImages(ws, 6);
    const dir = ws.dir;
    ws.close();
    // the first start is at once; a restart waits until the test lets it (as served mode's test
    // starts its second engine when it is done looking at the banner)
    let starts = 0;
    link = new EngineLink({
      start: async () => {
        if (starts++ > 0) await new Promise<void>((r) => (letRestart = r));
        return startEngineWithNode(ROOT, ['serve', '--ready-json', '--port', '0', '--workspace', dir]);
      },
      log: () => {},
    });
    await link.start();
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await link?.close();
  });

  it('shows one "lost the connection" banner and no toasts while the engine is away, and drops it when the new engine is up', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // the renderer's files, as Electron's loadFile gives them; nothing else is reachable
    await page.route(`${ORIGIN}/**`, (route) => {
      const file = path.join(RENDERER, new URL(route.request().url()).pathname);
      return file.startsWith(RENDERER) && fs.existsSync(file) && fs.statSync(file).isFile() ? route.fulfill({ path: file }) : route.fulfill({ status: 404, body: '' });
    });
    await page.exposeFunction('__carstudioRequest', (method: string, params: unknown) => link.request(method, params));
    await page.exposeFunction('__carstudioState', () => link.connection());
    await page.addInitScript(BRIDGE);
    link.onConnection((s) => void page.evaluate(([x]) => (globalThis as unknown as { __carstudioPush: (k: string, a: unknown) => void }).__carstudioPush('connection', x), [s]).catch(() => {}));
    link.onEvent((event, data) => void page.evaluate(([e, d]) => (globalThis as unknown as { __carstudioPush: (k: string, a: unknown, b: unknown) => void }).__carstudioPush('event', e, d), [event, data] as const).catch(() => {}));

    await page.goto(`${ORIGIN}/index.html#/dataset`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    const stored = page.getByTestId('stat-images-stored').locator('.metric-value');
    await stored.filter({ hasText: /^6$/ }).waitFor();
    expect(await page.getByTestId('connection-banner').count()).toBe(0);

    // the engine process dies
    process.kill(link.current()!.pid!, 'SIGKILL');
    const banner = page.getByTestId('connection-banner');
    await banner.waitFor();
    expect(await banner.textContent()).toMatch(/^Lost the connection to the engine\. Retrying/);
    expect(await page.getByTestId('connection').getAttribute('data-state')).toBe('closed');
    // calls made while it is away (a button, a stage change and back) add no toasts
    await page.getByTestId('verify-store').click();
    await page.getByTestId('nav-train').click();
    await page.getByTestId('stage-train').waitFor();
    await page.getByTestId('nav-dataset').click();
    await page.waitForTimeout(2000);
    // the stage opened again while the engine is away shows what it had
    expect(await stored.textContent()).toBe('6');
    expect(await page.getByTestId('connection-banner').count()).toBe(1);
    expect(await page.getByTestId('toast-error').count()).toBe(0);
    await page.screenshot({ path: artifactPath('electron-bridge-connection-lost.png') });

    // the link starts a new engine: the banner goes, the stage shows its data, calls work again
    letRestart();
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor({ timeout: 60_000 });
    await banner.waitFor({ state: 'detached' });
    await stored.filter({ hasText: /^6$/ }).waitFor();
    await page.getByTestId('verify-store').click();
    await page.locator('.job[data-state="done"]').first().waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('toast-error').count()).toBe(0);
    expect(errors).toEqual([]);
  }, 180_000);
});

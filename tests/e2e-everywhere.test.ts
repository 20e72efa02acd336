import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { methods } from '../src-main/engine/api/contract/index.ts';
import { seedStoredImages, tmpDir } from './helpers/workspace.ts';
import { api, startServe, type Served } from './helpers/processes.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';

// Waits on a job's progress have no clock of their own (a busy machine takes longer); the test's
// timeout is the last-resort bound.
const PROGRESS = { timeout: 0 };
const METHOD_NAMES = Object.keys(methods);

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

async function openStudio(browser: Browser, url: string, width = 1440): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
  return { page, errors };
}

if (!hasChromium()) console.log(`skipping the studio-wide UI tests: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.runIf(hasChromium())('studio messages, banners and the jobs panel in Chromium', () => {
  let browser: Browser;
  let dir: string;
  let demo: Served;
  let demoPage: Page;
  const servers: Served[] = [];
  beforeAll(async () => {
    // the demo's first start takes minutes (scrape, features, training): it runs while the
    // other tests do, watched by a page that records what its banner says
    demo = await startServe(['--demo', '--workspace', path.join(tmpDir(), 'demo-ws')]);
    browser = await launchChromium();
    demoPage = (await openStudio(browser, `${demo.url}?token=${demo.token}`, 1280)).page;
    await demoPage.evaluate(`(() => {
      window.__demoBanner = [];
      setInterval(() => {
        const b = document.querySelector('[data-testid="demo-banner"]');
        const seen = b ? b.getAttribute('data-phase') + ': ' + b.textContent : 'none';
        if (window.__demoBanner[window.__demoBanner.length - 1] !== seen) window.__demoBanner.push(seen);
      }, 100);
    })()`);
    dir = `${tmpDir()}/ws`;
    const ws = Workspace.open(dir, { create: true });
    await seedStoredImages(ws, 24);
    ws.close();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await demo?.stop();
    for (const s of servers) await s.stop('SIGKILL');
  });

  it('a failed call toasts what could not be done and why, in the user words, never a method name', async () => {
    const s = await startServe(['--workspace', dir]);
    servers.push(s);
    const { page, errors } = await openStudio(browser, `${s.url}?token=${s.token}#/dataset`);
    await page.getByTestId('scrape-baseUrl').fill('ftp://cars.example.com');
    await page.getByTestId('scrape-start').click();
    const toast = page.getByTestId('toast-error');
    await toast.waitFor();
    expect(await toast.locator('.toast-title').textContent()).toBe('Could not start the job');
    const text = (await toast.textContent())!;
    expect(text).toContain("must be an http(s) URL such as https://www.example.com, or 'demo' for the bundled demo site");
    expect(text).toMatch(/^Could not start the jobSome values were not accepted: /);
    for (const m of METHOD_NAMES) expect(text, m).not.toContain(m);
    expect(text).not.toMatch(/UserError|invalid parameters/);

    // the same failure again counts up on the same toast instead of stacking a second one
    await page.getByTestId('scrape-start').click();
    await toast.and(page.locator('[data-count="2"]')).waitFor();
    expect(await page.getByTestId('toast-error').count()).toBe(1);
    expect(await toast.textContent()).toContain('×2');
    // nothing was started
    expect(((await api(s, 'jobs.list', {})) as unknown[]).length).toBe(0);
    expect(errors).toEqual([]);
  });

  it('a lost engine is one banner, no toasts; the stage keeps its data and reloads when the engine is back', async () => {
    const port = await freePort();
    const token = `everywhere-${Math.random().toString(36).slice(2)}`;
    const first = await startServe(['--workspace', dir, '--port', String(port)], { CARSTUDIO_TOKEN: token });
    servers.push(first);
    const { page, errors } = await openStudio(browser, `http://127.0.0.1:${port}/?token=${token}#/dataset`);
    const stored = page.getByTestId('stat-images-stored').locator('.metric-value');
    await stored.filter({ hasText: /^24$/ }).waitFor();

    await first.stop('SIGKILL');
    const banner = page.getByTestId('connection-banner');
    await banner.waitFor();
    expect(await banner.textContent()).toMatch(/^Lost the connection to the engine\. Retrying/);
    // calls made while it is away (a button, a stage change and back) add no toasts
    await page.getByTestId('verify-store').click();
    await page.getByTestId('nav-train').click();
    await page.getByTestId('stage-train').waitFor();
    await page.getByTestId('nav-dataset').click();
    await page.waitForTimeout(3000);
    // the stage opened again while the engine is away shows what it had
    expect(await stored.textContent()).toBe('24');
    expect(await page.getByTestId('connection-banner').count()).toBe(1);
    expect(await page.getByTestId('toast-error').count()).toBe(0);
    expect(await page.getByTestId('connection').getAttribute('data-state')).toBe('closed');
    await page.screenshot({ path: artifactPath('everywhere-connection-lost.png') });

    // a new engine on the same port: the banner goes, the stage shows its data, calls work again
    const second = await startServe(['--workspace', dir, '--port', String(port)], { CARSTUDIO_TOKEN: token });
    servers.push(second);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor(PROGRESS);
    await banner.waitFor({ state: 'detached' });
    expect(await stored.textContent()).toBe('24');
    await page.getByTestId('verify-store').click();
    await page.locator('.job[data-state="done"]').first().waitFor(PROGRESS);
    expect(await page.getByTestId('toast-error').count()).toBe(0);
    expect(errors).toEqual([]);
  }, 300_000);

  it('the jobs panel shows the running jobs and the 5 newest finished ones; older ones fold into a history list (1280, 1440, 1920 px)', async () => {
    const s = await startServe(['--workspace', dir]);
    servers.push(s);
    const before = ((await api(s, 'jobs.list', { limit: 1000 })) as unknown[]).length;
    for (let i = before; i < 8; i++) {
      const job = (await api(s, 'jobs.start', { kind: 'verify-store', params: {} })) as { id: number };
      for (;;) {
        const j = (await api(s, 'jobs.get', { id: job.id })) as { state: string };
        if (j.state !== 'running' && j.state !== 'queued') break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const all = (await api(s, 'jobs.list', { limit: 1000 })) as Array<{ id: number }>;
    expect(all.length).toBe(8);
    for (const width of [1280, 1440, 1920]) {
      const { page, errors } = await openStudio(browser, `${s.url}?token=${s.token}#/dataset`, width);
      const panel = page.getByTestId('jobs-panel');
      await panel.locator('.job').nth(4).waitFor();
      expect(await panel.locator('.job').count()).toBe(5);
      const ids = await panel.locator('.job').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-testid')!.slice(4))));
      expect(ids).toEqual(all.slice(0, 5).map((j) => j.id));
      const toggle = page.getByTestId('jobs-history-toggle');
      expect(await toggle.textContent()).toBe('History: 3 older jobs');
      expect(await toggle.getAttribute('aria-expanded')).toBe('false');
      expect(await page.getByTestId('jobs-history').count()).toBe(0);
      await toggle.click();
      const history = page.getByTestId('jobs-history');
      await history.waitFor();
      expect(await history.locator('li').count()).toBe(3);
      expect(await history.locator('li').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-testid')!.slice(4))))).toEqual(all.slice(5).map((j) => j.id));
      expect(await toggle.getAttribute('aria-expanded')).toBe('true');
      await page.screenshot({ path: artifactPath(`everywhere-jobs-history-${width}.png`) });
      await toggle.click();
      await history.waitFor({ state: 'detached' });
      expect(errors).toEqual([]);
      await page.close();
    }
  }, 300_000);

  it("the demo's first start shows a banner with each step's progress, then 'ready'", async () => {
    const banner = demoPage.getByTestId('demo-banner');
    await banner.and(demoPage.locator('[data-phase="ready"]')).waitFor(PROGRESS);
    await demoPage.screenshot({ path: artifactPath('everywhere-demo-ready-1280.png') });
    const seen = (await demoPage.evaluate('window.__demoBanner')) as string[];
    const scrape = seen.filter((t) => t.startsWith('scrape: Preparing the demo (1 of 2): collecting car listings from the bundled demo site'));
    const train = seen.filter((t) => t.startsWith('train: Preparing the demo (2 of 2): training the demo model'));
    expect(scrape.length, seen.join('\n')).toBeGreaterThan(1);
    expect(train.length, seen.join('\n')).toBeGreaterThan(1);
    // progress that moves: counts out of the step's total
    expect(scrape.some((t) => /ids \d[\d,]* \/ 600 \(\d+%\)/.test(t)), seen.join('\n')).toBe(true);
    expect(train.some((t) => / \d[\d,]* \/ \d[\d,]* \(\d+%\)/.test(t)), seen.join('\n')).toBe(true);
    // in order: collecting, then training, then ready, and nothing else in between
    const phases = seen.map((t) => t.split(':')[0]).filter((p, i, a) => p !== 'none' && p !== a[i - 1]);
    expect(phases).toEqual(['scrape', 'train', 'ready']);
    expect(await banner.textContent()).toMatch(/^The demo is ready\./);
    await banner.getByTestId('demo-banner-dismiss').click();
    await banner.waitFor({ state: 'detached' });
    // a page opened after the demo is ready shows no banner
    const { page } = await openStudio(browser, `${demo.url}?token=${demo.token}`, 1920);
    await page.getByTestId('jobs-panel').locator('.job[data-state="done"]').nth(1).waitFor();
    expect(await page.getByTestId('demo-banner').count()).toBe(0);
  }, 900_000);
});

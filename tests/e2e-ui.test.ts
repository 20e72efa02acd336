import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { seedStoredImages, tmpDir } from './helpers/workspace.ts';
import { startServe, type Served } from './helpers/processes.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';

// Waits on a job's or a run's progress have no clock of their own (a busy machine takes longer);
// the test's timeout is the last-resort bound.
const PROGRESS = { timeout: 0 };

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

if (!hasChromium()) console.log(`skipping the UI end-to-end tests: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.runIf(hasChromium())('studio UI in Chromium', () => {
  let browser: Browser;
  let dir: string;
  const servers: Served[] = [];
  beforeAll(async () => {
    dir = `${tmpDir()}/ws`;
    const ws = Workspace.open(dir, { create: true });
    await seedStoredImages(ws, 2500);
    ws.close();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    for (const s of servers) await s.stop('SIGKILL');
  });

  it('navigates every stage, runs a job with live progress, and shows it resumed after the engine is killed', async () => {
    const port = await freePort();
    const token = 'e2e-token-' + Math.random().toString(36).slice(2);
    const first = await startServe(['--workspace', dir, '--port', String(port)], { CARSTUDIO_TOKEN: token });
    servers.push(first);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/?token=${token}`);
    expect(page.url()).toBe(`http://127.0.0.1:${port}/`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    await page.locator('.workspace').filter({ hasText: dir }).waitFor();

    for (const [id, heading] of [['dedup', 'Dedup'], ['filter', 'Label & Filter'], ['train', 'Train'], ['predict', 'Predict'], ['dataset', 'Dataset']] as const) {
      await page.getByTestId(`nav-${id}`).click();
      await page.getByTestId(`stage-${id}`).locator('h1').filter({ hasText: heading }).first().waitFor();
    }
    await page.getByTestId('stat-images-stored').locator('.metric-value').filter({ hasText: /^2,500$/ }).waitFor();

    // start a job from the UI and watch it in the jobs panel
    await page.getByTestId('verify-store').click();
    const card = page.locator('[data-testid^="job-"]').first();
    await card.and(page.locator('[data-state="running"]')).waitFor();
    await page.locator('[data-testid^="job-"] .job-meta').first().filter({ hasText: /[1-9]/ }).waitFor();
    const jobId = Number((await card.getAttribute('data-testid'))!.slice(4));

    // kill the engine mid-job: the UI says so, and a new engine resumes the job
    await first.stop('SIGKILL');
    await page.getByTestId('connection').and(page.locator('[data-state="closed"]')).waitFor();
    const second = await startServe(['--workspace', dir, '--port', String(port)], { CARSTUDIO_TOKEN: token });
    servers.push(second);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor(PROGRESS);
    const resumed = page.getByTestId(`job-${jobId}`);
    await resumed.and(page.locator('[data-state="done"]')).waitFor(PROGRESS);
    expect(await resumed.textContent()).toContain('resumed 1×');
    expect(await resumed.locator('.job-meta').textContent()).toContain('2,500 / 2,500');
    await page.screenshot({ path: artifactPath('studio-shell.png') });
    expect(errors).toEqual([]);
  }, 600_000);

  it('cancels a running job from the jobs panel and resumes it', async () => {
    const s = await startServe(['--workspace', dir]);
    servers.push(s);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${s.url}?token=${s.token}`);
    await page.getByTestId('verify-store').click();
    const card = page.locator('.job[data-state="running"]').first();
    await card.waitFor();
    const id = await card.getAttribute('data-testid');
    await card.getByRole('button', { name: 'Cancel' }).click();
    const stopped = page.getByTestId(id!);
    await stopped.and(page.locator('[data-state="cancelled"]')).waitFor();
    // the same state word as the runs table and `carstudio runs`: a cancelled job is "stopped"
    expect(await stopped.locator('.badge').first().textContent()).toBe('stopped');
    await stopped.getByRole('button', { name: 'Resume' }).click();
    await stopped.and(page.locator('[data-state="done"]')).waitFor(PROGRESS);
  }, 400_000);

  it('refuses the page without the token', async () => {
    const s = servers[servers.length - 1]!;
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const res = await page.goto(s.url);
    expect(res!.status()).toBe(401);
    expect(await page.textContent('body')).toContain('access token');
    await ctx.close();
  });
});

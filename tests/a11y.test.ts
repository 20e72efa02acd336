import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { makeJpeg, ROOT, seedStoredImages, tmpDir } from './helpers/workspace.ts';
import { api, startServe, type Served } from './helpers/processes.ts';
import { buildHeadsRun } from './helpers/predict-run.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';

const AXE = path.join(ROOT, 'node_modules', 'axe-core', 'axe.min.js');
const STAGES = ['dataset', 'dedup', 'filter', 'train', 'predict'] as const;
/**
 * The rules of accessibility basics this checks: every control and image named, labels, ARIA
 * that names things, keyboard focus (order, reachable scroll areas, nothing focusable inside
 * another control), and text contrast against what is behind it (WCAG AA: 4.5:1, 3:1 for large
 * text; disabled controls are exempt, as WCAG has them).
 */
const RULES = [
  'button-name', 'link-name', 'input-button-name', 'select-name', 'label', 'label-title-only', 'image-alt', 'input-image-alt', 'svg-img-alt', 'role-img-alt',
  'aria-input-field-name', 'aria-toggle-field-name', 'aria-command-name', 'aria-progressbar-name', 'aria-meter-name', 'aria-tooltip-name', 'aria-dialog-name',
  'aria-allowed-attr', 'aria-required-attr', 'aria-valid-attr', 'aria-valid-attr-value', 'aria-hidden-focus', 'frame-title', 'document-title', 'html-has-lang',
  'scrollable-region-focusable', 'nested-interactive', 'tabindex', 'focus-order-semantics', 'accesskeys',
  'color-contrast',
];

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[]; html: string; any?: Array<{ message?: string; data?: { messageKey?: string } | null }> }>;
}

/** The critical and serious violations on the page as it is now, one line per element, prefixed with `where`. */
async function violations(page: Page, where: string): Promise<string[]> {
  const { violations: found, incomplete } = (await page.evaluate(`axe.run(document, { runOnly: { type: 'rule', values: ${JSON.stringify(RULES)} }, resultTypes: ['violations', 'incomplete'] }).then((r) => ({ violations: r.violations, incomplete: r.incomplete }))`)) as { violations: AxeViolation[]; incomplete: AxeViolation[] };
  // what axe could not decide (text over a photo, SVG text), counted by its reason, for the log
  const unsure = new Map<string, number>();
  for (const v of incomplete) for (const n of v.nodes) {
    const why = `${v.id}/${n.any?.[0]?.data?.messageKey ?? n.any?.[0]?.message ?? '?'}`;
    unsure.set(why, (unsure.get(why) ?? 0) + 1);
  }
  console.log(`${where}: axe could not decide ${[...unsure].map(([k, n]) => `${n} (${k})`).join(', ') || 'nothing'}`);
  const out: string[] = [];
  for (const v of found.filter((x) => x.impact === 'critical' || x.impact === 'serious')) {
    for (const n of v.nodes) out.push(`${where}: ${v.id} (${v.impact}) ${v.help}: ${n.target.join(' ')} ${n.html.slice(0, 160)}`);
  }
  return out;
}

/**
 * Text inside the charts' SVGs, which axe leaves undecided (an SVG image's text): each label's fill
 * against the panel behind the chart, 4.5:1 (chart labels are small). One line per failing label.
 */
async function chartTextContrast(page: Page, where: string): Promise<string[]> {
  const bad = (await page.evaluate(`(() => {
    const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
    const behind = (el) => { for (let e = el.closest('svg').parentElement; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); } return [255, 255, 255]; };
    const out = [];
    for (const t of document.querySelectorAll('svg text')) {
      if (!t.textContent.trim() || !t.getClientRects().length) continue;
      const fill = rgb(getComputedStyle(t).fill);
      if (fill.length < 3) continue;
      const a = lum(fill), b = lum(behind(t));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) out.push(ratio.toFixed(2) + ':1 ' + (t.closest('svg').getAttribute('data-testid') || t.closest('svg').getAttribute('aria-label') || 'svg') + ' "' + t.textContent.trim().slice(0, 30) + '"');
    }
    return out;
  })()`)) as string[];
  return bad.map((b) => `${where}: chart text contrast ${b}`);
}

if (!hasChromium()) console.log(`skipping the accessibility checks: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.runIf(hasChromium())('accessibility basics on every stage (axe-core in Chromium)', () => {
  let browser: Browser;
  let served: Served;
  let photos: string;
  beforeAll(async () => {
    const root = tmpDir();
    const dir = `${root}/ws`;
    // a folder of photos for the Predict stage's results and its compare table
    photos = path.join(root, 'photos');
    fs.mkdirSync(photos);
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(photos, `car-${i + 1}.jpg`), await makeJpeg(320, 240, 70 + i));
    const ws = Workspace.open(dir, { create: true });
    await seedStoredImages(ws, 12);
    ws.close();
    // a trained run, so the Train stage's runs and the Predict stage's run picker are checked too
    await buildHeadsRun(dir, 'a11y', { synthetic: true, photos: 40, steps: 40 });
    served = await startServe(['--workspace', dir]);
    // a finished job, so the Jobs panel's card and its controls are checked too
    const job = (await api(served, 'jobs.start', { kind: 'verify-store', params: {} })) as { id: number };
    for (;;) {
      const j = (await api(served, 'jobs.get', { id: job.id })) as { state: string };
      if (j.state !== 'running' && j.state !== 'queued') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    browser = await launchChromium();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await served?.stop();
  });

  it('has no critical or serious violations of the naming, label, focus and contrast rules on the five stages and the compare table', async () => {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${served.url}?token=${served.token}`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    await page.addScriptTag({ path: AXE });
    const found: string[] = [];
    for (const stage of STAGES) {
      await page.getByTestId(`nav-${stage}`).click();
      await page.getByTestId(`stage-${stage}`).locator('h1').first().waitFor();
      // let the stage's first queries answer
      await page.waitForLoadState('networkidle');
      await page.waitForTimeout(500);
      found.push(...(await violations(page, stage)), ...(await chartTextContrast(page, stage)));
      await page.screenshot({ path: artifactPath(`a11y-${stage}.png`) });
    }
    // the Predict stage with results (cards, their badges) and two of them in the compare table
    await page.getByTestId('predict-folder').fill(photos);
    await page.getByTestId('predict-start').click();
    await page.locator('[data-testid="predict-progress"][data-state="done"]').waitFor({ timeout: 0 });
    await page.getByTestId('predict-card').nth(2).waitFor();
    await page.getByTestId('predict-select').nth(0).check();
    await page.getByTestId('predict-select').nth(1).check();
    await page.getByTestId('predict-compare').click();
    await page.getByTestId('predict-compare-row').nth(1).waitFor({ timeout: 60_000 });
    await page.waitForTimeout(300);
    found.push(...(await violations(page, 'predict results and compare table')), ...(await chartTextContrast(page, 'predict results and compare table')));
    await page.screenshot({ path: artifactPath('a11y-predict-compare.png'), fullPage: true });
    // a photo's details and its crop pan (the charts' legend)
    await page.getByTestId('predict-open').first().click();
    await page.getByTestId('predict-detail').waitFor();
    await page.getByTestId('predict-pan-this').click();
    await page.getByTestId('predict-pan-result').waitFor({ timeout: 0 });
    await page.waitForTimeout(300);
    found.push(...(await violations(page, 'predict photo details and crop pan')), ...(await chartTextContrast(page, 'predict photo details and crop pan')));
    await page.screenshot({ path: artifactPath('a11y-predict-pan.png'), fullPage: true });
    console.log(`axe: ${found.length} critical or serious violations${found.length ? `\n${found.join('\n')}` : ''}`);
    expect(found, found.join('\n')).toEqual([]);
    expect(errors).toEqual([]);
  }, 360_000);

  it('reaches the stages by keyboard, with a visible focus ring', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${served.url}?token=${served.token}`);
    await page.getByTestId('connection').and(page.locator('[data-state="open"]')).waitFor();
    const focused = (): Promise<{ testid: string | null; outline: string }> =>
      page.evaluate(`(() => { const e = document.activeElement; const s = getComputedStyle(e); return { testid: e.getAttribute('data-testid'), outline: s.outlineStyle + ' ' + s.outlineWidth }; })()`);
    const reached: string[] = [];
    for (let i = 0; i < 40 && reached.length < STAGES.length; i++) {
      await page.keyboard.press('Tab');
      const f = await focused();
      if (f.testid?.startsWith('nav-')) {
        reached.push(f.testid.slice(4));
        expect(f.outline, f.testid).toMatch(/^solid [1-9]/);
      }
    }
    expect(reached).toEqual([...STAGES]);
    // Enter on the focused link opens its stage
    await page.keyboard.press('Enter');
    await page.getByTestId('stage-predict').waitFor();
  });
});

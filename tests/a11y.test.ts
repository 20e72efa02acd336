import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { Workspace } from '../src-main/engine/workspace/workspace.ts';
import { ROOT, seedStoredImages, tmpDir } from './helpers/workspace.ts';
import { api, startServe, type Served } from './helpers/processes.ts';
import { buildHeadsRun } from './helpers/predict-run.ts';
import { artifactPath, CHROMIUM, hasChromium, launchChromium } from './helpers/browser.ts';

const AXE = path.join(ROOT, 'node_modules', 'axe-core', 'axe.min.js');
const STAGES = ['dataset', 'dedup', 'filter', 'train', 'predict'] as const;
/**
 * The rules of accessibility basics this checks: every control and image named, labels, ARIA
 * that names things, keyboard focus (order, reachable scroll areas, nothing focusable inside
 * another control).
 */
const RULES = [
  'button-name', 'link-name', 'input-button-name', 'select-name', 'label', 'label-title-only', 'image-alt', 'input-image-alt', 'svg-img-alt', 'role-img-alt',
  'aria-input-field-name', 'aria-toggle-field-name', 'aria-command-name', 'aria-progressbar-name', 'aria-meter-name', 'aria-tooltip-name', 'aria-dialog-name',
  'aria-allowed-attr', 'aria-required-attr', 'aria-valid-attr', 'aria-valid-attr-value', 'aria-hidden-focus', 'frame-title', 'document-title', 'html-has-lang',
  'scrollable-region-focusable', 'nested-interactive', 'tabindex', 'focus-order-semantics', 'accesskeys',
];

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[]; html: string }>;
}

if (!hasChromium()) console.log(`skipping the accessibility checks: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.runIf(hasChromium())('accessibility basics on every stage (axe-core in Chromium)', () => {
  let browser: Browser;
  let served: Served;
  beforeAll(async () => {
    const dir = `${tmpDir()}/ws`;
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

  it('has no critical or serious violations of the naming, label and focus rules on the five stages', async () => {
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
      const violations = (await page.evaluate(`axe.run(document, { runOnly: { type: 'rule', values: ${JSON.stringify(RULES)} }, resultTypes: ['violations'] }).then((r) => r.violations)`)) as AxeViolation[];
      for (const v of violations.filter((x) => x.impact === 'critical' || x.impact === 'serious')) {
        for (const n of v.nodes) found.push(`${stage}: ${v.id} (${v.impact}) ${v.help}: ${n.target.join(' ')} ${n.html.slice(0, 160)}`);
      }
      await page.screenshot({ path: artifactPath(`a11y-${stage}.png`) });
    }
    expect(found, found.join('\n')).toEqual([]);
    expect(errors).toEqual([]);
  }, 240_000);

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

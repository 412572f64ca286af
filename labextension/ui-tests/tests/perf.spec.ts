/**
 * Sidebar figures in the real browser (run by benchmarks/bench_sidebar.py, project `perf`).
 *
 * The workspace ($MLWS_WORKSPACE) holds one model with many versions and a few hundred other
 * names; the server root holds as many files, so JupyterLab's file browser (the baseline) shows
 * a listing of the same size. Every figure is measured inside the page with performance.now(),
 * from the action to the frame after the awaited rows are in the DOM and visible.
 * Results are written as JSON to $MLWS_PERF_OUT.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as fs from 'fs';

const RUNS = Number(process.env.MLWS_PERF_RUNS || 5);
const BIG = process.env.MLWS_PERF_MODEL || 'bench-model';

test.use({ autoGoto: false });

/** Run `action` in the page and time it until `selector` is visible (plus one frame). */
async function timeIt(
  page: IJupyterLabPageFixture,
  action: string,
  arg: string,
  selector: string
): Promise<number> {
  return page.evaluate(
    async ({ action, arg, selector }) => {
      const app = (window as any).jupyterapp;
      const visible = () => {
        const el = document.querySelector(selector) as HTMLElement | null;
        return !!el && el.offsetParent !== null && el.getBoundingClientRect().height > 0;
      };
      const t0 = performance.now();
      if (action === 'activate') {
        app.shell.activateById(arg);
      } else if (action === 'click') {
        (document.querySelector(arg) as HTMLElement).click();
      } else if (action === 'filter') {
        const input = document.querySelector('.jp-mlws-search-input') as HTMLInputElement;
        const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')!
          .set!;
        setter.call(input, arg);
        input.dispatchEvent(new Event('input', { bubbles: true }));
      }
      return await new Promise<number>((resolve, reject) => {
        const deadline = t0 + 30_000;
        const check = () => {
          if (visible()) {
            requestAnimationFrame(() => resolve(performance.now() - t0));
          } else if (performance.now() > deadline) {
            reject(new Error(`timed out waiting for ${selector}`));
          } else {
            requestAnimationFrame(check);
          }
        };
        check();
      });
    },
    { action, arg, selector }
  );
}

/** Load JupyterLab afresh (nothing of the panel fetched or rendered yet). */
async function reload(page: IJupyterLabPageFixture): Promise<void> {
  // Leave another panel open, so that the restored layout does not open (render) ours.
  if (await page.evaluate(() => !!(window as any).jupyterapp)) {
    await page.evaluate(() =>
      (window as any).jupyterapp.shell.activateById('jp-running-sessions')
    );
    await page.waitForTimeout(1500);
  }
  await page.goto();
  await page.waitForLoadState('networkidle');
  await page.evaluate(() => (window as any).jupyterapp.shell.activateById('jp-running-sessions'));
  // Cold means cold: the panel has not rendered (nor fetched) anything yet.
  expect(await page.locator('.jp-mlws-panel').count()).toBe(0);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

test('sidebar first paint with many versions', async ({ page }) => {
  const results: Record<string, number[]> = {
    panel_cold: [],
    filebrowser: [],
    panel_warm: [],
    expand_versions: [],
    load_more_versions: [],
    filter: [],
    load_more_names: []
  };
  const firstModelRow = '.jp-mlws-section[data-mlws-kind="models"] .jp-mlws-asset-row';
  const big = `.jp-mlws-section[data-mlws-kind="models"] [data-mlws-name="${BIG}"]`;

  for (let i = 0; i < RUNS; i++) {
    await reload(page);
    // The panel opened for the first time since the page loaded: fetch + render.
    results.panel_cold.push(await timeIt(page, 'activate', 'jp-mlws-sidebar', firstModelRow));
    // Baseline: JupyterLab's file browser (same number of entries in the root folder).
    results.filebrowser.push(
      await timeIt(page, 'activate', 'filebrowser', '.jp-DirListing-item')
    );
    // Back to the panel (already rendered; the jobs poll resumes).
    results.panel_warm.push(await timeIt(page, 'activate', 'jp-mlws-sidebar', firstModelRow));

    // Expand the model with 10,000 versions: the first page of versions.
    await expect(page.locator(big)).toBeVisible();
    results.expand_versions.push(
      await timeIt(page, 'click', `${big} .jp-mlws-asset-row`, `${big} .jp-mlws-version`)
    );
    const shown = await page.locator(`${big} .jp-mlws-version`).count();
    results.load_more_versions.push(
      await timeIt(
        page,
        'click',
        `${big} .jp-mlws-load-more`,
        `${big} .jp-mlws-version:nth-child(${shown + 1})`
      )
    );

    // Next page of names.
    const names = await page.locator(
      '.jp-mlws-section[data-mlws-kind="models"] > .jp-mlws-section-body > .jp-mlws-list > .jp-mlws-asset'
    ).count();
    results.load_more_names.push(
      await timeIt(
        page,
        'click',
        '.jp-mlws-section[data-mlws-kind="models"] > .jp-mlws-section-body > .jp-mlws-load-more',
        `.jp-mlws-section[data-mlws-kind="models"] .jp-mlws-list > .jp-mlws-asset:nth-child(${
          names + 1
        })`
      )
    );

    // Server-side filter (includes the 250 ms typing debounce).
    results.filter.push(
      await timeIt(
        page,
        'filter',
        'name-0277',
        '.jp-mlws-section[data-mlws-kind="models"] [data-mlws-name$="name-0277"]'
      )
    );
  }

  const versionsTotal = await page.request
    .get(`/mlws/api/assets/models/${BIG}/versions?limit=1`)
    .then(r => r.json());
  const namesTotal = await page.request.get('/mlws/api/assets/models?limit=1').then(r => r.json());
  const summary = {
    runs: RUNS,
    versions: versionsTotal.total,
    names: namesTotal.total,
    median_ms: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)])),
    samples_ms: results
  };
  console.log(JSON.stringify(summary, null, 2));
  if (process.env.MLWS_PERF_OUT) {
    fs.writeFileSync(process.env.MLWS_PERF_OUT, JSON.stringify(summary, null, 2));
  }
  expect(summary.versions).toBeGreaterThan(0);
});

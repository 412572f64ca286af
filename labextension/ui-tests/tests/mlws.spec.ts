/**
 * Browser tests of the ML Workspace panel and "Run as job…", against a real Jupyter server with
 * the jupyter_mlws REST API and a workspace seeded by jupyter_server_test_config.py (a model
 * "iris-classifier" with three versions, an environment, data). The job really runs (papermill,
 * local compute).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

import { openPanel, PANEL, parametersNotebook, SHOTS } from './helpers';

async function shot(page: IJupyterLabPageFixture, name: string, selector?: string) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  if (selector) {
    await page.locator(selector).first().screenshot({ path: file });
  } else {
    await page.screenshot({ path: file });
  }
  test.info().attachments.push({ name, path: file, contentType: 'image/png' });
}

/** A notebook whose first cell is tagged "parameters"; it prints and logs a metric. */
function paramsNotebook(): string {
  return parametersNotebook(
    'alpha = 0.1\nlabel = "iris"\nepochs = 2',
    'from jupyter_mlws import run\n' +
      'for step in range(epochs):\n' +
      '    run.log_metric("loss", alpha / (step + 1), step=step)\n' +
      'print(f"MLWS-UI-TEST alpha={alpha} label={label} epochs={epochs}")'
  );
}

test.describe('ML Workspace panel', () => {
  test('lists the seeded assets and expands a model to its versions', async ({ page }) => {
    await openPanel(page);
    const models = page.locator('.jp-mlws-section[data-mlws-kind="models"]');
    const iris = models.locator('[data-mlws-name="iris-classifier"]');
    await expect(iris).toBeVisible();
    await expect(iris.locator('.jp-mlws-badge').first()).toHaveText('3');

    await iris.locator('.jp-mlws-asset-row').click();
    const versions = iris.locator('.jp-mlws-version');
    await expect(versions).toHaveCount(3);
    await expect(versions.first()).toHaveAttribute('data-mlws-version', '3');
    await expect(versions.first().locator('.jp-mlws-tag', { hasText: 'stage=prod' })).toBeVisible();
    await expect(versions.first().locator('.jp-mlws-size')).toHaveText(/KB|B/);

    // Environments show their hash and whether they are built; data is there too.
    const envs = page.locator('.jp-mlws-section[data-mlws-kind="environments"]');
    const env = envs.locator('[data-mlws-name="iris-train"]');
    await expect(env).toBeVisible();
    await env.locator('.jp-mlws-asset-row').click();
    await expect(env.locator('.jp-mlws-hash')).toHaveText(/^[0-9a-f]{12}$/);
    await expect(env.locator('.jp-mlws-build')).toHaveText(/cached|not built/);
    await expect(
      page.locator('.jp-mlws-section[data-mlws-kind="data"] [data-mlws-name="iris-table"]')
    ).toBeVisible();

    // The filter asks the server (q) and shows only matching names.
    await page.locator('.jp-mlws-search-input').fill('churn');
    await expect(models.locator('[data-mlws-name="churn-model"]')).toBeVisible();
    await expect(models.locator('[data-mlws-name="iris-classifier"]')).toHaveCount(0);
    await page.locator('.jp-mlws-search-input').fill('');
    await expect(iris).toBeVisible();

    await iris.locator('.jp-mlws-asset-row').click();
    await expect(iris.locator('.jp-mlws-version')).toHaveCount(3);
    await page.sidebar.setWidth(360);
    await shot(page, 'sidebar-light', '.jp-mlws-sidebar');
    await page.theme.setDarkTheme();
    await expect(iris.locator('.jp-mlws-version')).toHaveCount(3);
    await shot(page, 'sidebar-dark', '.jp-mlws-sidebar');
    await page.theme.setLightTheme();
  });

  test('"Run as job…" is in the command palette and the notebook context menu', async ({
    page,
    tmpPath
  }) => {
    const nb = `${tmpPath}/menu.ipynb`;
    await page.contents.uploadContent(paramsNotebook(), 'text', nb);
    await page.notebook.openByPath(nb);
    await page.notebook.activate('menu.ipynb');

    await page.evaluate(() =>
      (window as any).jupyterapp.commands.execute('apputils:activate-command-palette')
    );
    await page.locator('#modal-command-palette input').fill('Run as job');
    await expect(
      page.locator('#modal-command-palette .lm-CommandPalette-item', { hasText: 'Run as job…' })
    ).toBeVisible();
    await page.keyboard.press('Escape');

    await page.locator('.jp-Notebook .jp-Cell').first().click({ button: 'right' });
    await expect(
      page.locator('.lm-Menu-item', { hasText: 'Run as job…' }).first()
    ).toBeVisible();
    await page.keyboard.press('Escape');
    await expect(page.locator('.jp-mlws-run-button')).toBeVisible();

    // A value the server refuses is shown beside its input; the form opens again.
    await page.locator('.jp-mlws-run-button').click();
    const dialog = page.locator('.jp-Dialog');
    await dialog.locator('[data-mlws-param="alpha"]').fill('{1, 2}');
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(dialog.locator('[data-mlws-param-error="alpha"]')).toContainText('is a set');
    await expect(dialog.locator('[data-mlws-param="alpha"]')).toHaveValue('{1, 2}');
    // The server's refusal is shown with its message (an unknown compute).
    await dialog.locator('[data-mlws-param="alpha"]').fill('0.2');
    await dialog.locator('.jp-mlws-run-compute').evaluate((select: HTMLSelectElement) => {
      const option = document.createElement('option');
      option.value = option.textContent = 'no-such-compute';
      select.appendChild(option);
      select.value = 'no-such-compute';
    });
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(dialog.locator('.jp-mlws-run-error')).toContainText('no-such-compute');
    await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
    await expect(dialog).toHaveCount(0);
  });

  test('runs a notebook as a job and follows it to Completed', async ({ page, tmpPath }) => {
    const nb = `${tmpPath}/params-job.ipynb`;
    await page.contents.uploadContent(paramsNotebook(), 'text', nb);
    await page.notebook.openByPath(nb);
    await page.notebook.activate('params-job.ipynb');

    // The toolbar button opens the form, pre-filled from the parameters cell.
    await page.locator('.jp-mlws-run-button').click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog.locator('.jp-mlws-run-form')).toBeVisible();
    const alpha = dialog.locator('[data-mlws-param="alpha"]');
    await expect(alpha).toHaveValue('0.1');
    await expect(dialog.locator('[data-mlws-param="label"]')).toHaveValue('"iris"');
    await expect(dialog.locator('.jp-mlws-run-environment option').first()).toHaveText(
      "(kernel's Python)"
    );
    await expect(dialog.locator('.jp-mlws-run-compute')).toHaveValue('local');
    await alpha.fill('0.5');
    await dialog.locator('[data-mlws-param="label"]').fill("'setosa'");
    await shot(page, 'run-as-job-form-light', '.jp-Dialog-content');
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(dialog).toHaveCount(0);

    // The new job shows at the top of the Jobs section and reaches Completed without reload.
    const row = page.locator('.jp-mlws-sidebar .jp-mlws-job.jp-mlws-highlighted');
    await expect(row).toBeVisible();
    const jobId = await row.getAttribute('data-mlws-job-id');
    expect(jobId).toBeTruthy();
    await expect(row.locator('.jp-mlws-status')).toHaveText('Completed', { timeout: 90_000 });

    // The detail view: log lines, metrics, events; then the output notebook.
    await row.locator('.jp-mlws-job-row').click();
    const detail = page.locator(`.jp-mlws-job-detail[data-mlws-job-id="${jobId}"]`);
    await expect(detail).toBeVisible();
    await expect(detail.locator('.jp-mlws-status').first()).toHaveText('Completed');
    await expect(detail.locator('.jp-mlws-log')).toContainText(
      "MLWS-UI-TEST alpha=0.5 label=setosa epochs=2",
      { timeout: 20_000 }
    );
    await expect(detail.locator('.jp-mlws-metrics [data-mlws-metric="loss"]')).toHaveCount(2);
    await expect(detail.locator('.jp-mlws-event').first()).toBeVisible();
    await expect(detail.locator('.jp-mlws-cancel')).toHaveCount(0);

    await page.sidebar.setWidth(360);
    await shot(page, 'job-light');
    await page.theme.setDarkTheme();
    await expect(detail.locator('.jp-mlws-log')).toBeVisible();
    await shot(page, 'job-dark');
    await shot(page, 'sidebar-jobs-dark', '.jp-mlws-sidebar');
    await page.theme.setLightTheme();

    await detail.locator('.jp-mlws-open-output').click();
    const outputTab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', {
      hasText: '.ipynb'
    });
    await expect(
      page.locator('.jp-NotebookPanel .jp-OutputArea-output', {
        hasText: 'MLWS-UI-TEST alpha=0.5'
      })
    ).toBeVisible({ timeout: 20_000 });
    await expect(outputTab.first()).toBeVisible();
  });
});

test.describe('Job polling', () => {
  test('a job submitted elsewhere appears in the open panel without reload', async ({
    page,
    tmpPath
  }) => {
    await openPanel(page);
    const nb = `${tmpPath}/elsewhere.ipynb`;
    await page.contents.uploadContent(paramsNotebook(), 'text', nb);
    // Submit through the REST API directly (as the CLI or another tab would).
    const answer = await page.request.post('/mlws/api/jobs', {
      data: { notebook: nb, parameters: { epochs: 1 } }
    });
    expect(answer.status()).toBe(201);
    const job = await answer.json();
    const row = page.locator(`.jp-mlws-sidebar [data-mlws-job-id="${job.id}"]`);
    await expect(row).toBeVisible({ timeout: 10_000 });
    await expect(row.locator('.jp-mlws-status')).toHaveText('Completed', { timeout: 90_000 });

    // Hidden panel: no more polling.
    await page.sidebar.openTab('filebrowser');
    await page.waitForTimeout(500);
    let polls = 0;
    const count = (request: { url: () => string }) => {
      if (/\/mlws\/api\/jobs(\?|$)/.test(request.url())) {
        polls++;
      }
    };
    page.on('request', count);
    await page.waitForTimeout(5_000);
    expect(polls).toBe(0);
    // Shown again: polling resumes.
    await page.sidebar.openTab(PANEL);
    await page.waitForTimeout(4_500);
    page.off('request', count);
    expect(polls).toBeGreaterThanOrEqual(2);
  });

  test('cancels a running job from its detail view', async ({ page, tmpPath }) => {
    await openPanel(page);
    const nb = `${tmpPath}/slow.ipynb`;
    const slow = JSON.parse(paramsNotebook());
    slow.cells[1].source = 'import time\nprint("MLWS-UI-TEST sleeping", flush=True)\ntime.sleep(120)';
    await page.contents.uploadContent(JSON.stringify(slow), 'text', nb);
    const answer = await page.request.post('/mlws/api/jobs', { data: { notebook: nb } });
    expect(answer.status()).toBe(201);
    const job = await answer.json();

    const row = page.locator(`.jp-mlws-sidebar [data-mlws-job-id="${job.id}"]`);
    await expect(row.locator('.jp-mlws-status')).toHaveText('Running', { timeout: 30_000 });
    await row.locator('.jp-mlws-job-row').click();
    const detail = page.locator(`.jp-mlws-job-detail[data-mlws-job-id="${job.id}"]`);
    // The log is followed while the job runs.
    await expect(detail.locator('.jp-mlws-log')).toContainText('MLWS-UI-TEST sleeping', {
      timeout: 30_000
    });
    await detail.locator('.jp-mlws-cancel').click();
    await expect(detail.locator('.jp-mlws-status').first()).toHaveText('Canceled', {
      timeout: 30_000
    });
    await expect(detail.locator('.jp-mlws-cancel')).toHaveCount(0);
    await expect(row.locator('.jp-mlws-status')).toHaveText('Canceled', { timeout: 10_000 });
  });
});


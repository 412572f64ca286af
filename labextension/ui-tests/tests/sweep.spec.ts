/**
 * Browser test of "Run as sweep…": a notebook with a parameters cell is swept from its form
 * (pre-filled from the cell) through POST /sweeps, and the job view shows the trials appear and
 * finish, sorted by the objective, the best trial and the metric-by-trial chart. The trials
 * really run (papermill, local compute).
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

import { parametersNotebook, SHOTS } from './helpers';


/** A notebook whose first cell is tagged "parameters"; it logs `accuracy` = C * weight. */
function sweepNotebook(): string {
  return parametersNotebook(
    'C = 1.0\nkernel = "rbf"\nepochs = 2',
    'from jupyter_mlws import run\n' +
      'weight = {"rbf": 1.0, "linear": 0.5}[kernel]\n' +
      'for step in range(epochs):\n' +
      '    run.log_metric("accuracy", C * weight * (step + 1) / epochs, step=step)\n' +
      'print(f"MLWS-SWEEP-TEST C={C} kernel={kernel}")'
  );
}

test.describe('Run as sweep', () => {
  test('sweeps a notebook from its parameters cell and shows the trials and the best', async ({
    page,
    tmpPath
  }) => {
    test.setTimeout(300_000);
    const nb = `${tmpPath}/sweep-train.ipynb`;
    await page.contents.uploadContent(sweepNotebook(), 'text', nb);
    await page.notebook.openByPath(nb);
    await page.notebook.activate('sweep-train.ipynb');

    // The toolbar button opens the form, one row per parameter of the parameters cell.
    await page.locator('.jp-mlws-sweep-button').click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog.locator('.jp-mlws-sweep-form')).toBeVisible();
    await expect(dialog.locator('[data-mlws-param="C"]')).toHaveValue('1.0');
    await expect(dialog.locator('[data-mlws-param="kernel"]')).toHaveValue('"rbf"');
    await expect(dialog.locator('[data-mlws-search="C"]')).toHaveValue('');
    await expect(dialog.locator('.jp-mlws-run-compute')).toHaveValue('local');

    // A refused expression is shown beside its input; the form opens again with it.
    await dialog.locator('[data-mlws-search="C"]').fill('gaussian(0, 1)');
    await dialog.locator('.jp-mlws-sweep-metric').fill('accuracy');
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(dialog.locator('[data-mlws-param-error="C"]')).toContainText('gaussian');
    await expect(dialog.locator('[data-mlws-search="C"]')).toHaveValue('gaussian(0, 1)');

    // C swept over three values (grid), kernel swept over two is not asked: kernel stays fixed.
    await dialog.locator('[data-mlws-search="C"]').fill('choice(0.5, 2.0, 1.0)');
    await expect(dialog.locator('[data-mlws-param="C"]')).toBeDisabled();
    await dialog.locator('[data-mlws-param="epochs"]').fill('3');
    await dialog.locator('.jp-mlws-sweep-goal').selectOption('maximize');
    await dialog.locator('.jp-mlws-sweep-max-trials').fill('3');
    await dialog.locator('.jp-mlws-sweep-max-concurrent').fill('2');
    await dialog.locator('.jp-mlws-sweep-sampling').selectOption('grid');
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.locator('.jp-Dialog-content').screenshot({
      path: path.join(SHOTS, 'run-as-sweep-form-light.png')
    });
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(dialog).toHaveCount(0);

    // The sweep shows at the top of the Jobs section; its view follows it live.
    const row = page.locator('.jp-mlws-sidebar .jp-mlws-job.jp-mlws-highlighted');
    await expect(row).toBeVisible();
    const sweepId = await row.getAttribute('data-mlws-job-id');
    expect(sweepId).toBeTruthy();
    await row.locator('.jp-mlws-job-row').click();
    const detail = page.locator(`.jp-mlws-job-detail[data-mlws-job-id="${sweepId}"]`);
    const sweep = detail.locator(`.jp-mlws-sweep[data-mlws-sweep="${sweepId}"]`);
    await expect(sweep).toBeVisible({ timeout: 30_000 });
    await expect(sweep.locator('h3')).toContainText('maximize accuracy');

    // The trials appear and finish; the best is trial with C=2.0, first in the table.
    const trials = sweep.locator('.jp-mlws-sweep-trial');
    await expect(trials).toHaveCount(3, { timeout: 120_000 });
    await expect(detail.locator('.jp-mlws-job-head .jp-mlws-status')).toHaveText('Completed', {
      timeout: 240_000
    });
    await expect(trials.locator('.jp-mlws-status')).toHaveText([
      'Completed',
      'Completed',
      'Completed'
    ]);
    await expect(trials.locator('.jp-mlws-sweep-value')).toHaveText(['2.000', '1.000', '0.5000']);
    await expect(trials.first()).toHaveClass(/jp-mlws-sweep-trial-best/);
    const best = sweep.locator('.jp-mlws-sweep-best');
    await expect(best).toContainText('accuracy = 2.000');
    await expect(best).toContainText('C=2');
    await expect(best).not.toContainText('so far');

    // The chart: one dot per trial, the best ringed, the best-so-far line.
    const chart = sweep.locator('svg.jp-mlws-sweep-chart');
    await expect(chart.locator('.jp-mlws-sweep-point')).toHaveCount(3);
    await expect(chart.locator('.jp-mlws-sweep-point-best')).toHaveCount(1);
    await expect(chart.locator('.jp-mlws-sweep-best-line')).toHaveCount(1);
    await sweep.screenshot({ path: path.join(SHOTS, 'sweep-light.png') });
    await page.theme.setDarkTheme();
    await expect(chart.locator('.jp-mlws-sweep-point')).toHaveCount(3);
    await sweep.screenshot({ path: path.join(SHOTS, 'sweep-dark.png') });
    await page.theme.setLightTheme();

    // A trial's job opens from the table.
    const trialJob = await trials.first().locator('.jp-mlws-sweep-job').textContent();
    await trials.first().locator('.jp-mlws-sweep-job').click();
    const trialView = page.locator(`.jp-mlws-job-detail[data-mlws-job-id="${trialJob}"]`);
    await expect(trialView.locator('.jp-mlws-log')).toContainText(
      'MLWS-SWEEP-TEST C=2.0 kernel=rbf',
      { timeout: 30_000 }
    );
  });
});

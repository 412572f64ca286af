/**
 * Browser test of the "Mine" filter of the Jobs section: tests/mine_fixture.py submits a job as
 * `someone-else` straight into the served workspace; this page submits one through the REST API
 * as the browser's Jupyter user. With "Mine" on, only the browser user's job is listed (REST
 * `created_by=me`), the choice survives a reload (session storage), and each row's tooltip names
 * its creator and host.
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

import { openPanel, parametersNotebook, runFixture, SHOTS } from './helpers';

let other: { id: string; created_by: string; status: string };

test.describe('Mine filter', () => {
  test.beforeAll(() => {
    test.setTimeout(180 * 1000);
    other = JSON.parse(runFixture('mine', 'up').trim().split('\n').pop() as string);
    expect(other.created_by).toBe('someone-else');
    expect(other.status).toBe('Completed');
  });

  test('lists only the jobs of the browser user, and remembers it', async ({
    page,
    tmpPath
  }) => {
    test.setTimeout(180 * 1000);
    await openPanel(page);
    const nb = `${tmpPath}/mine.ipynb`;
    await page.contents.uploadContent(parametersNotebook('x = 1', 'print(x)'), 'text', nb);
    const answer = await page.request.post('/mlws/api/jobs', {
      data: { notebook: nb, display_name: 'mine' }
    });
    expect(answer.status()).toBe(201);
    const job = await answer.json();
    const me = await (await page.request.get('/api/me')).json();
    expect(job.created_by).toBe(me.identity.username);

    const jobs = page.locator('.jp-mlws-sidebar .jp-mlws-jobs');
    const mineRow = jobs.locator(`[data-mlws-job-id="${job.id}"]`);
    const otherRow = jobs.locator(`[data-mlws-job-id="${other.id}"]`);
    const toggle = jobs.locator('.jp-mlws-mine-toggle');
    // everyone's jobs first
    await expect(toggle).not.toBeChecked();
    await expect(mineRow).toBeVisible({ timeout: 15_000 });
    await expect(otherRow).toBeVisible();
    await expect(otherRow.locator('.jp-mlws-job-row')).toHaveAttribute(
      'title',
      /submitted by someone-else on \S+/
    );
    await expect(mineRow.locator('.jp-mlws-job-row')).toHaveAttribute(
      'title',
      new RegExp(`submitted by ${me.identity.username}`)
    );

    await toggle.check();
    await expect(otherRow).toHaveCount(0);
    await expect(mineRow).toBeVisible();
    await expect(jobs.locator('.jp-mlws-job')).toHaveCount(1);
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.locator('.jp-mlws-sidebar').screenshot({ path: path.join(SHOTS, 'mine.png') });

    // remembered for the session: still on after a reload
    await page.reload();
    await openPanel(page);
    await expect(jobs.locator('.jp-mlws-mine-toggle')).toBeChecked();
    await expect(jobs.locator(`[data-mlws-job-id="${job.id}"]`)).toBeVisible({ timeout: 15_000 });
    await expect(jobs.locator(`[data-mlws-job-id="${other.id}"]`)).toHaveCount(0);

    // off again: everyone's
    await jobs.locator('.jp-mlws-mine-toggle').uncheck();
    await expect(jobs.locator(`[data-mlws-job-id="${other.id}"]`)).toBeVisible();
  });
});

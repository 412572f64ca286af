/**
 * Browser test of the outdated-environment marker and the Rebuild action, against a real Jupyter
 * server and a real Docker engine: tests/outdated_fixture.py builds `ui-outdated` (an unpinned
 * `six`) on a throwaway copy of the offline base, deploys a score.py in it as `ep-old/main`, then
 * moves the base's tag to an image labelled as patched on 2026-11-30. The panel marks the
 * environment and the deployment; "Rebuild and redeploy", confirmed, rebuilds it on the current
 * base from its lock and rolls the deployment, and the markers go away.
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

import { openPanel, runFixture, SHOTS } from './helpers';

test.describe('Outdated environments', () => {
  test.beforeAll(() => {
    test.setTimeout(330 * 1000);
    const out = runFixture('outdated', 'up');
    expect(out).toContain('{"deployment": "Succeeded", "outdated": ["ui-outdated:1"]}');
  });

  test.afterAll(() => {
    test.setTimeout(120 * 1000);
    runFixture('outdated', 'down');
  });

  test('marks the environment and its deployment, and rebuilds and redeploys', async ({
    page
  }) => {
    test.setTimeout(360 * 1000);
    await openPanel(page);
    const env = page.locator(
      '.jp-mlws-section[data-mlws-kind="environments"] [data-mlws-name="ui-outdated"]'
    );
    await expect(env.locator('.jp-mlws-outdated-badge')).toBeVisible();
    const note = env.locator('[data-mlws-outdated="ui-outdated:1"]');
    await expect(note.locator('.jp-mlws-outdated-reason')).toHaveText(
      'base patched on 2026-11-30'
    );
    // an environment built on the current base has no marker
    const current = page.locator('[data-mlws-name="iris-train"]');
    await expect(current).toBeVisible();
    await expect(current.locator('.jp-mlws-outdated-badge')).toHaveCount(0);

    // the deployment serving it is marked in the Endpoints view
    const endpoint = page.locator('[data-mlws-endpoint="ep-old"]');
    await expect(endpoint.locator('.jp-mlws-outdated-badge')).toBeVisible();
    await endpoint.locator('.jp-mlws-asset-row').click();
    const main = endpoint.locator('[data-mlws-deployment="main"]');
    await expect(main.locator('.jp-mlws-outdated-badge')).toHaveAttribute(
      'title',
      'ui-outdated:1 is outdated: base patched on 2026-11-30'
    );

    fs.mkdirSync(SHOTS, { recursive: true });
    await page
      .locator('.jp-mlws-sidebar')
      .screenshot({ path: path.join(SHOTS, 'outdated-light.png') });

    // a canceled confirmation starts nothing
    await note.locator('.jp-mlws-rebuild').click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog).toContainText('Rebuild ui-outdated:1?');
    await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
    await expect(dialog).toHaveCount(0);
    await expect(note.locator('[data-mlws-rebuild-status]')).toHaveCount(0);

    // rebuild and redeploy: confirmed, followed, then the markers are gone
    await note.locator('.jp-mlws-rebuild-redeploy').click();
    await expect(dialog).toContainText('roll ep-old/main to the new image');
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    const status = note.locator('[data-mlws-rebuild-status]');
    await expect(status).toHaveAttribute('data-mlws-rebuild-status', 'succeeded', {
      timeout: 300 * 1000
    });
    await expect(status).toHaveText('Rebuilt from its lock; rolled ep-old/main.');
    await expect(env.locator('.jp-mlws-outdated-badge')).toHaveCount(0);
    await expect(note.locator('.jp-mlws-rebuild')).toHaveCount(0);
    await expect(main.locator('.jp-mlws-outdated-badge')).toHaveCount(0);
    await expect(endpoint.locator('.jp-mlws-outdated-badge')).toHaveCount(0);
    await expect(main.locator('[data-mlws-status]')).toHaveText('Succeeded');
  });
});

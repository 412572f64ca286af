/**
 * Browser test of the Endpoints section of the ML Workspace panel, against a real Jupyter server
 * and a real deployment: tests/endpoint_fixture.py registers a model and deploys an Azure-style
 * score.py as `blue` (all traffic) and `green`, and a `red` whose init() raises, of endpoint
 * `ep-ui` (a supervisor, a router on a real port, replica processes) in the workspace the server
 * serves, and deletes it afterwards.
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

import { openPanel, runFixture, SHOTS } from './helpers';

test.describe('Endpoints section', () => {
  test.beforeAll(() => {
    const out = runFixture('endpoint', 'up');
    expect(out).toContain('"name": "blue", "state": "Succeeded", "traffic": 100');
    expect(out).toContain('"name": "green", "state": "Succeeded", "traffic": 0');
    expect(out).toContain('"name": "red", "state": "Failed"');
  });

  test.afterAll(() => {
    runFixture('endpoint', 'down');
  });

  test('shows the endpoint and its deployment, follows its log, and tests it', async ({
    page
  }) => {
    await openPanel(page);
    const section = page.locator('.jp-mlws-section[data-mlws-kind="endpoints"]');
    const endpoint = section.locator('[data-mlws-endpoint="ep-ui"]');
    await expect(endpoint).toBeVisible();
    await expect(endpoint.locator('.jp-mlws-endpoint-traffic')).toHaveText('blue 100%');

    await endpoint.locator('.jp-mlws-asset-row').click();
    await expect(endpoint.locator('[data-mlws-scoring-uri]')).toHaveText(
      /^http:\/\/127\.0\.0\.1:\d+\/score$/
    );
    const blue = endpoint.locator('[data-mlws-deployment="blue"]');
    await expect(blue.locator('[data-mlws-status]')).toHaveText('Succeeded');
    await expect(blue.locator('.jp-mlws-replicas')).toHaveText('1/1');
    await expect(blue.locator('.jp-mlws-traffic')).toHaveText('100%');
    // a deployment whose init() raised: Failed, with its traceback shown
    const red = endpoint.locator('[data-mlws-deployment="red"]');
    await expect(red.locator('[data-mlws-status]')).toHaveText('Failed');
    await expect(endpoint.locator('[data-mlws-error-of="red"]')).toContainText(
      'weights.bin is missing'
    );

    // the log view shows the tail (init() printed), then follows
    const log = endpoint.locator('.jp-mlws-endpoint-log[data-mlws-log-of="blue"]');
    await expect(log).toContainText('init done: model');

    // the test box: a JSON body in, the answer, the deployment and the latency out
    const box = endpoint.locator('.jp-mlws-test-box');
    await box.locator('.jp-mlws-test-body').fill('{"data": [1, 2, 3]}');
    await box.locator('.jp-mlws-test-send').click();
    const result = box.locator('.jp-mlws-test-result');
    await expect(result).toHaveAttribute('data-mlws-test-status', '200');
    await expect(result.locator('.jp-mlws-test-deployment')).toHaveText('blue');
    await expect(result.locator('.jp-mlws-test-latency')).toHaveText(/^\d+\.\d ms$/);
    const answer = JSON.parse((await result.locator('.jp-mlws-test-answer').textContent())!);
    expect(answer).toEqual({ predictions: [3, 5, 7], color: 'blue' });
    await expect(endpoint.locator('[data-mlws-deployment="green"] .jp-mlws-traffic')).toHaveText(
      '0%'
    );

    // what run() prints reaches the followed log without reopening anything
    await box.locator('.jp-mlws-test-body').fill('{"data": "marker-ui-4242"}');
    await box.locator('.jp-mlws-test-send').click();
    await expect(result.locator('.jp-mlws-test-answer')).toContainText('marker-ui-4242');
    await expect(log).toContainText('run got marker-ui-4242');

    // a body that is not JSON is refused in the page, before any request
    await box.locator('.jp-mlws-test-body').fill('{not json');
    await box.locator('.jp-mlws-test-send').click();
    await expect(box.locator('.jp-mlws-test-error')).toContainText('not JSON');

    // the traffic split: a bad one is refused with the server's message, a good one applies
    const editor = endpoint.locator('.jp-mlws-traffic-editor');
    await editor.locator('[data-mlws-traffic-input="blue"]').fill('90');
    await editor.locator('[data-mlws-traffic-input="green"]').fill('20');
    await editor.getByRole('button', { name: 'Set traffic' }).click();
    await expect(editor.locator('.jp-mlws-traffic-error')).toContainText('sums to 110%');
    await expect(endpoint.locator('.jp-mlws-endpoint-traffic')).toHaveText('blue 100%');
    await editor.locator('[data-mlws-traffic-input="blue"]').fill('0');
    await editor.locator('[data-mlws-traffic-input="green"]').fill('100');
    await editor.getByRole('button', { name: 'Set traffic' }).click();
    await expect(endpoint.locator('.jp-mlws-endpoint-traffic')).toHaveText('green 100%');
    await expect(editor.locator('.jp-mlws-traffic-error')).toHaveCount(0);
    await box.locator('.jp-mlws-test-body').fill('{"data": [0]}');
    await box.locator('.jp-mlws-test-send').click();
    await expect(result.locator('.jp-mlws-test-deployment')).toHaveText('green');
    // the deployment picker overrides the split (the azureml-model-deployment header)
    await box.locator('.jp-mlws-test-target').selectOption('blue');
    await box.locator('.jp-mlws-test-send').click();
    await expect(result.locator('.jp-mlws-test-deployment')).toHaveText('blue');
    await expect(result.locator('.jp-mlws-test-answer')).toContainText('"color": "blue"');

    fs.mkdirSync(SHOTS, { recursive: true });
    await page.sidebar.setWidth(380);
    for (const theme of ['light', 'dark']) {
      if (theme === 'dark') {
        await page.theme.setDarkTheme();
      }
      await expect(result.locator('.jp-mlws-test-deployment')).toHaveText('blue');
      const file = path.join(SHOTS, `endpoints-${theme}.png`);
      await section.screenshot({ path: file });
      test.info().attachments.push({ name: `endpoints-${theme}`, path: file, contentType: 'image/png' });
    }
    await page.theme.setLightTheme();
  });
});

/**
 * What the browser tests share: the panel, where screenshots go, notebooks with a parameters
 * cell, and the Python fixtures that set up a workspace state (tests/*_fixture.py).
 */
import { expect, IJupyterLabPageFixture } from '@jupyterlab/galata';
import { execFileSync } from 'child_process';
import * as path from 'path';

/** The id of the ML Workspace panel in the left area. */
export const PANEL = 'jp-mlws-sidebar';
/** Screenshots kept as artifacts of the run. */
export const SHOTS = path.resolve(__dirname, '..', 'test-results', 'screenshots');

/** Open the ML Workspace panel. */
export async function openPanel(page: IJupyterLabPageFixture): Promise<void> {
  await page.sidebar.openTab(PANEL);
  await expect(page.locator('.jp-mlws-sidebar')).toBeVisible();
}

/** A Python notebook (nbformat 4) of code cells: the first is tagged "parameters". */
export function parametersNotebook(parameters: string, ...code: string[]): string {
  const cell = (source: string, tags: string[] = []) => ({
    cell_type: 'code',
    execution_count: null,
    metadata: tags.length ? { tags } : {},
    outputs: [],
    source
  });
  return JSON.stringify({
    cells: [cell(parameters, ['parameters']), ...code.map(source => cell(source))],
    metadata: {
      kernelspec: { display_name: 'Python 3', language: 'python', name: 'python3' },
      language_info: { name: 'python' }
    },
    nbformat: 4,
    nbformat_minor: 5
  });
}

/** Run `tests/<name>_fixture.py up|down` against the served workspace; its output. */
export function runFixture(name: string, action: 'up' | 'down'): string {
  return execFileSync(
    process.env.MLWS_PYTHON || 'python',
    [path.resolve(__dirname, `${name}_fixture.py`), action],
    { env: process.env, timeout: 300 * 1000 }
  ).toString();
}

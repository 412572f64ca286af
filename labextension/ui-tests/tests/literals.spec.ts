/**
 * Issue 9: one NAME=VALUE literal parser. Values typed in "Run as job…" reach the job with the
 * types the CLI gives them (`mlws job notebook -p NAME VALUE`), and a value the server refuses
 * (a set, bytes, a complex number, a string for an int parameter) is shown beside its input with
 * the server's message, and nothing is submitted.
 *
 * The cases are the ones every surface is checked against (tests/surface/literal_cases.py). The
 * CLI really runs (`python -m jupyter_mlws.cli`) against the workspace the server serves
 * ($MLWS_WORKSPACE), on the same notebook (under $JUPYTERLAB_GALATA_ROOT_DIR).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { parametersNotebook, SHOTS } from './helpers';

/** The checkout (its python package and tests/ are what the server and the CLI import). */
const REPO = path.resolve(__dirname, '..', '..', '..');
const TYPES_MARK = 'MLWS-TYPES ';

interface ILiteralCases {
  /** name -> [text as typed, the JSON the job records] */
  cases: Record<string, [string, unknown]>;
  /** text -> words its error must contain */
  refused: Record<string, string[]>;
  /** the parameters cell defining every case name */
  cell: string;
}

function python(args: string[]): string {
  return execFileSync('python', args, {
    cwd: REPO,
    env: { ...process.env, PYTHONPATH: REPO },
    encoding: 'utf-8',
    timeout: 120_000
  });
}

function literalCases(): ILiteralCases {
  return JSON.parse(
    python([
      '-c',
      'import json\n' +
        'from tests.surface.literal_cases import CASES, NOTEBOOK_PARAMETERS, REFUSED\n' +
        'print(json.dumps({"cases": CASES, "refused": REFUSED, "cell": NOTEBOOK_PARAMETERS}))'
    ])
  );
}

/** A notebook whose parameters cell defines `cell`; it prints each p_* value and its type. */
function typesNotebook(cell: string): string {
  return parametersNotebook(
    cell,
    'import json\n' +
      'seen = {k: [type(v).__name__, v] for k, v in sorted(globals().items()) ' +
      'if k.startswith("p_")}\n' +
      `print(${JSON.stringify(TYPES_MARK)} + json.dumps(seen, sort_keys=True), flush=True)`
  );
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the tests with scripts/browser-tests.sh`);
  }
  return value;
}

async function jobTotal(page: IJupyterLabPageFixture): Promise<number> {
  const answer = await page.request.get('/mlws/api/jobs?limit=1');
  expect(answer.status()).toBe(200);
  return (await answer.json()).total;
}

/** The job once it ended, and the line its notebook printed with the types it was given. */
async function finishedTypes(
  page: IJupyterLabPageFixture,
  id: string
): Promise<{ job: any; types: string }> {
  let job: any;
  await expect
    .poll(
      async () => {
        job = await (await page.request.get(`/mlws/api/jobs/${id}`)).json();
        return job.status;
      },
      { timeout: 90_000, intervals: [250, 500, 1000] }
    )
    .toMatch(/^(Completed|Failed|Canceled)$/);
  const log = (await (await page.request.get(`/mlws/api/jobs/${id}/logs`)).json()).text;
  expect(job.status, log).toBe('Completed');
  const line = log.split('\n').find((l: string) => l.includes(TYPES_MARK));
  expect(line, log).toBeTruthy();
  return { job, types: line.slice(line.indexOf(TYPES_MARK) + TYPES_MARK.length).trim() };
}

test.describe('One literal parser', () => {
  test('"Run as job…" gives values the types the CLI gives; refused values submit nothing', async ({
    page,
    tmpPath
  }) => {
    const { cases, refused, cell } = literalCases();
    const names = Object.keys(cases);
    expect(names).toEqual(expect.arrayContaining(['p_negative', 'p_list', 'p_quoted', 'p_bool']));
    const nb = `${tmpPath}/types.ipynb`;
    await page.contents.uploadContent(typesNotebook(cell), 'text', nb);
    await page.notebook.openByPath(nb);
    await page.notebook.activate('types.ipynb');

    // Refused values: the server's message (and hint) beside the input; no job is created.
    const before = await jobTotal(page);
    await page.locator('.jp-mlws-run-button').click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog.locator('.jp-mlws-run-form')).toBeVisible();
    for (const name of names) {
      await dialog.locator(`[data-mlws-param="${name}"]`).fill(cases[name][0]);
    }
    const input = dialog.locator('[data-mlws-param="p_list"]');
    const fieldError = dialog.locator('[data-mlws-param-error="p_list"]');
    for (const [text, words] of Object.entries(refused)) {
      await input.fill(text);
      await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
      await expect(fieldError).toBeVisible();
      for (const word of words) {
        await expect(fieldError).toContainText(word);
      }
      await expect(input).toHaveValue(text);
      await expect(input).toHaveAttribute('aria-invalid', 'true');
      await expect(dialog.locator('.jp-mlws-param-error')).toHaveCount(1);
      await expect(dialog.locator('.jp-mlws-run-error')).toContainText('p_list');
      expect(await jobTotal(page)).toBe(before);
    }
    // The set of the brief, with the server's whole message: what it is and how to write it.
    await input.fill('{1,2}');
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(fieldError).toContainText("The value '{1,2}' of 'p_list' is a set");
    await expect(fieldError).toContainText('write a list instead, e.g. [1, 2]');
    expect(await jobTotal(page)).toBe(before);
    fs.mkdirSync(SHOTS, { recursive: true });
    await fieldError.scrollIntoViewIfNeeded();
    await page.locator('.jp-Dialog-content').screenshot({
      path: path.join(SHOTS, 'run-as-job-refused-light.png')
    });

    // Corrected: every value goes, as typed (the other inputs kept their text).
    await input.fill(cases.p_list[0]);
    await expect(dialog.locator('[data-mlws-param="p_negative"]')).toHaveValue(
      cases.p_negative[0]
    );
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(dialog).toHaveCount(0);
    const row = page.locator('.jp-mlws-sidebar .jp-mlws-job.jp-mlws-highlighted');
    await expect(row).toBeVisible();
    const sidebarId = (await row.getAttribute('data-mlws-job-id')) as string;
    expect(sidebarId).toBeTruthy();
    expect(await jobTotal(page)).toBe(before + 1);

    // The same texts through the CLI, on the same notebook and workspace.
    const args = ['-m', 'jupyter_mlws.cli', 'job', 'notebook'];
    args.push(path.join(required('JUPYTERLAB_GALATA_ROOT_DIR'), nb));
    args.push('-w', required('MLWS_WORKSPACE'), '-o', 'json');
    for (const name of names) {
      args.push('-p', name, cases[name][0]);
    }
    const cliId = JSON.parse(python(args)).id as string;

    const fromSidebar = await finishedTypes(page, sidebarId);
    const fromCli = await finishedTypes(page, cliId);
    const want = Object.fromEntries(names.map(n => [n, cases[n][1]]));
    // The recorded parameters (REST job detail) are the cases' JSON, for both. The form sends
    // only what differs from the notebook's defaults (all None), so `None` stays the default.
    const unsent = names.filter(n => cases[n][0].trim() === 'None');
    const sent = Object.fromEntries(names.filter(n => !unsent.includes(n)).map(n => [n, want[n]]));
    expect(fromCli.job.spec.parameters).toEqual(want);
    expect(fromSidebar.job.spec.parameters).toEqual(sent);
    // What the notebook saw: Python types and values, printed by Python (1 and 1.0 differ).
    expect(fromSidebar.types).toBe(fromCli.types);
    const seen = JSON.parse(fromSidebar.types);
    expect(seen.p_negative).toEqual(['float', -0.5]);
    expect(seen.p_int).toEqual(['int', -3]);
    expect(seen.p_list).toEqual(['list', [64, 32]]);
    expect(seen.p_quoted).toEqual(['str', '7']);
    expect(seen.p_bool).toEqual(['bool', true]);
    expect(seen.p_word).toEqual(['str', 'adam']);

    // The sidebar's job detail shows the recorded values.
    await row.locator('.jp-mlws-job-row').click();
    const detail = page.locator(`.jp-mlws-job-detail[data-mlws-job-id="${sidebarId}"]`);
    const params = detail.locator('.jp-mlws-params');
    await expect(params.locator('tr', { hasText: 'p_negative' })).toContainText('-0.5');
    await expect(params.locator('tr', { hasText: 'p_list' })).toContainText('[64,32]');
    await expect(params.locator('tr', { hasText: 'p_quoted' })).toContainText('"7"');
    await expect(params.locator('tr', { hasText: 'p_bool' })).toContainText('true');
  });

  test('a string for an int parameter is refused beside its input', async ({ page, tmpPath }) => {
    const nb = `${tmpPath}/typed.ipynb`;
    await page.contents.uploadContent(
      typesNotebook('p_epochs = 2\np_label = "iris"\np_rate = 0.1'),
      'text',
      nb
    );
    await page.notebook.openByPath(nb);
    await page.notebook.activate('typed.ipynb');
    const before = await jobTotal(page);
    await page.locator('.jp-mlws-run-button').click();
    const dialog = page.locator('.jp-Dialog');
    await dialog.locator('[data-mlws-param="p_epochs"]').fill("'text'");
    await dialog.locator('[data-mlws-param="p_rate"]').fill('-0.5');
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    const fieldError = dialog.locator('[data-mlws-param-error="p_epochs"]');
    await expect(fieldError).toContainText("The parameter 'p_epochs' of typed.ipynb is an int");
    await expect(fieldError).toContainText("'text' (str)");
    await expect(dialog.locator('[data-mlws-param="p_epochs"]')).toBeFocused();
    expect(await jobTotal(page)).toBe(before);

    // An emptied input is refused in the form (it would be the empty string).
    await dialog.locator('[data-mlws-param="p_epochs"]').fill('');
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(dialog.locator('[data-mlws-param-error="p_epochs"]')).toContainText(
      'A value is missing'
    );

    await dialog.locator('[data-mlws-param="p_epochs"]').fill('3');
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await expect(dialog).toHaveCount(0);
    const row = page.locator('.jp-mlws-sidebar .jp-mlws-job.jp-mlws-highlighted');
    await expect(row).toBeVisible();
    const id = (await row.getAttribute('data-mlws-job-id')) as string;
    const { job, types } = await finishedTypes(page, id);
    expect(job.spec.parameters).toEqual({ p_epochs: 3, p_rate: -0.5 });
    expect(JSON.parse(types)).toEqual({
      p_epochs: ['int', 3],
      p_label: ['str', 'iris'],
      p_rate: ['float', -0.5]
    });
  });
});

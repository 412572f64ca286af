/**
 * "Run as job…": a form to submit the current notebook as a job — environment, compute and one
 * input per parameter of its parameters cell. The text typed is sent as is
 * (`literal_parameters`): the server reads it with the one `NAME=VALUE` parser the CLI and the
 * magics use, so a value has the same type on every surface. A value it refuses (a set, bytes,
 * a string for an int parameter...) is shown beside its input with the server's message.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { MlwsApiError } from './request';
import {
  IAsset,
  IJob,
  INotebookParameter,
  INotebookSubmission,
  MlwsService
} from './service';

/** The value of the environment select that means "no environment: the kernel's Python". */
export const KERNEL_PYTHON = '';
/** How many environments and computes the selects offer. */
const CHOICES_LIMIT = 500;

/** What the form returns. */
export interface IRunJobValue {
  environment: string;
  compute: string;
  /** Parameter name -> text typed (read by the server as the CLI's `-p` reads it). */
  texts: Record<string, string>;
}

/** Why the last submission was refused; `parameter` names the input it is about. */
export interface IRunJobError {
  message: string;
  parameter?: string;
}

/** What the form is built from. */
export interface IRunJobChoices {
  path: string;
  parameters: INotebookParameter[];
  parametersError?: string;
  environments: IAsset[];
  computes: IAsset[];
  choicesError?: string;
}

export function errorText(error: unknown): string {
  return error instanceof MlwsApiError
    ? error.display
    : ((error as Error)?.message ?? String(error));
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') {
      node.className = v;
    } else {
      node.setAttribute(k, v);
    }
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** The environment select (first option: the kernel's Python), appended to `form`. */
export function environmentSelect(
  form: HTMLElement,
  choices: IRunJobChoices,
  previous?: string
): HTMLSelectElement {
  const label = el('label', { class: 'jp-mlws-run-field' });
  label.appendChild(el('span', { class: 'jp-mlws-run-label' }, 'Environment'));
  const select = el('select', {
    class: 'jp-mod-styled jp-mlws-run-environment',
    name: 'environment'
  });
  select.appendChild(el('option', { value: KERNEL_PYTHON }, "(kernel's Python)"));
  for (const env of choices.environments) {
    const ref = `${env.name}:${env.version}`;
    const text = env.cached === false ? `${ref} (not built)` : ref;
    select.appendChild(el('option', { value: ref }, text));
  }
  select.value = previous ?? KERNEL_PYTHON;
  label.appendChild(select);
  form.appendChild(label);
  return select;
}

/** The compute select (`local` always offered), appended to `form`. */
export function computeSelect(
  form: HTMLElement,
  choices: IRunJobChoices,
  previous?: string
): HTMLSelectElement {
  const label = el('label', { class: 'jp-mlws-run-field' });
  label.appendChild(el('span', { class: 'jp-mlws-run-label' }, 'Compute'));
  const select = el('select', { class: 'jp-mod-styled jp-mlws-run-compute', name: 'compute' });
  const names = choices.computes.map(c => c.name);
  if (!names.includes('local')) {
    names.unshift('local');
  }
  for (const name of names) {
    const compute = choices.computes.find(c => c.name === name);
    const type = (compute?.spec?.type as string | undefined) ?? compute?.type;
    select.appendChild(
      el('option', { value: name }, type && type !== name ? `${name} (${type})` : name)
    );
  }
  select.value = previous ?? 'local';
  label.appendChild(select);
  form.appendChild(label);
  return select;
}

/**
 * What every submission form starts with: the notebook's path, the error to show (if any),
 * and the environment and compute selects (filled with the previous choice).
 */
export function formStart(
  form: HTMLFormElement,
  choices: IRunJobChoices,
  errorText: string | null,
  previous?: { environment?: string; compute?: string }
): { env: HTMLSelectElement; compute: HTMLSelectElement } {
  form.addEventListener('submit', e => e.preventDefault());
  form.appendChild(el('div', { class: 'jp-mlws-run-path' }, choices.path));
  if (errorText) {
    form.appendChild(el('div', { class: 'jp-mlws-error jp-mlws-run-error' }, errorText));
  }
  if (choices.choicesError) {
    form.appendChild(el('div', { class: 'jp-mlws-error' }, choices.choicesError));
  }
  return {
    env: environmentSelect(form, choices, previous?.environment),
    compute: computeSelect(form, choices, previous?.compute)
  };
}

/** The body of the dialog. */
export class RunJobForm extends Widget implements Dialog.IBodyWidget<IRunJobValue> {
  constructor(choices: IRunJobChoices, previous?: IRunJobValue, error?: IRunJobError) {
    super({ node: el('form', { class: 'jp-mlws-run-form' }) });
    const form = this.node as HTMLFormElement;
    const known = choices.parameters.some(p => p.name === error?.parameter);
    const text = !error
      ? null
      : known
        ? `The job was not submitted: the value of ${error.parameter} was refused.`
        : error.parameter
          ? `The job was not submitted: ${error.message}`
          : error.message;
    const start = formStart(form, choices, text, previous);
    this._env = start.env;
    this._compute = start.compute;

    // Parameters
    const fieldset = el('fieldset', { class: 'jp-mlws-run-params' });
    fieldset.appendChild(el('legend', {}, 'Parameters'));
    if (choices.parametersError) {
      fieldset.appendChild(el('div', { class: 'jp-mlws-error' }, choices.parametersError));
    } else if (choices.parameters.length === 0) {
      fieldset.appendChild(
        el(
          'div',
          { class: 'jp-mlws-muted jp-mlws-run-noparams' },
          "This notebook has no cell tagged 'parameters'; it runs with its own values."
        )
      );
    }
    for (const p of choices.parameters) {
      const row = el('label', { class: 'jp-mlws-run-field jp-mlws-run-param' });
      const name = el('span', { class: 'jp-mlws-run-label' }, p.name);
      if (p.type) {
        name.appendChild(el('span', { class: 'jp-mlws-muted' }, `: ${p.type}`));
      }
      row.appendChild(name);
      const input = el('input', {
        class: 'jp-mod-styled jp-mlws-param-input',
        type: 'text',
        name: `param-${p.name}`,
        'data-mlws-param': p.name,
        spellcheck: 'false',
        placeholder: p.default ?? ''
      });
      input.value = previous?.texts[p.name] ?? p.default ?? '';
      if (p.help) {
        input.title = p.help;
      }
      row.appendChild(input);
      fieldset.appendChild(row);
      if (known && error?.parameter === p.name) {
        input.setAttribute('aria-invalid', 'true');
        fieldset.appendChild(
          el(
            'div',
            { class: 'jp-mlws-error jp-mlws-param-error', 'data-mlws-param-error': p.name },
            error.message
          )
        );
        this._invalid = input;
      }
      this._params.set(p.name, input);
    }
    form.appendChild(fieldset);
    form.appendChild(
      el(
        'div',
        { class: 'jp-mlws-muted jp-mlws-run-note' },
        "Values are read as the CLI's -p reads them: Python literals (0.5, 'text', [1, 2], " +
          'True, None); other text is a string. The notebook is saved first.'
      )
    );
  }

  getValue(): IRunJobValue {
    const texts: Record<string, string> = {};
    for (const [name, input] of this._params) {
      texts[name] = input.value;
    }
    return { environment: this._env.value, compute: this._compute.value, texts };
  }

  protected onAfterAttach(): void {
    const first = this._params.values().next().value as HTMLInputElement | undefined;
    (this._invalid ?? first ?? this._env).focus();
  }

  private _env: HTMLSelectElement;
  private _compute: HTMLSelectElement;
  private _params = new Map<string, HTMLInputElement>();
  private _invalid?: HTMLInputElement;
}

/**
 * Parameters to send: the text of those that differ from the notebook's default (the others
 * keep the notebook's own value), untouched; the server gives them their types. An emptied
 * input is refused here (it would be the empty string, which is rarely what was meant).
 */
export function literalParameters(
  parameters: INotebookParameter[],
  texts: Record<string, string>
): { literals: Record<string, string>; error?: IRunJobError } {
  const literals: Record<string, string> = {};
  for (const p of parameters) {
    const text = texts[p.name] ?? '';
    if (text.trim() === (p.default ?? '').trim()) {
      continue;
    }
    if (text.trim() === '') {
      return {
        literals,
        error: {
          parameter: p.name,
          message: "A value is missing. Write None for nothing, or '' for an empty string."
        }
      };
    }
    literals[p.name] = text;
  }
  return { literals };
}

/** The server's refusal of a submission, tied to the parameter it names if any. */
export function submissionError(error: unknown): IRunJobError {
  if (!(error instanceof MlwsApiError)) {
    return { message: `The job was not submitted: ${errorText(error)}` };
  }
  const details = error.details ?? {};
  const name = details.field === 'literal_parameters' ? details.name : details.parameter;
  if (error.status === 400 && typeof name === 'string') {
    return { message: error.display, parameter: name };
  }
  return { message: `The job was not submitted: ${error.display}` };
}

/** Everything the form offers, fetched in parallel. */
export async function loadChoices(service: MlwsService, path: string): Promise<IRunJobChoices> {
  const [params, envs, computes] = await Promise.allSettled([
    service.notebookParameters(path),
    service.listAssets('environments', { limit: CHOICES_LIMIT }),
    service.listAssets('computes', { limit: CHOICES_LIMIT })
  ]);
  const failed = [envs, computes].find(r => r.status === 'rejected') as
    | PromiseRejectedResult
    | undefined;
  return {
    path,
    parameters: params.status === 'fulfilled' ? params.value : [],
    parametersError: params.status === 'rejected' ? errorText(params.reason) : undefined,
    environments: envs.status === 'fulfilled' ? envs.value.items : [],
    computes: computes.status === 'fulfilled' ? computes.value.items : [],
    choicesError: failed ? errorText(failed.reason) : undefined
  };
}

/** What `formLoop` needs to show a submission form until it is submitted or canceled. */
export interface IFormLoop<V, E, B, T> {
  title: string;
  okLabel: string;
  focusNodeSelector: string;
  /** The form, filled with the previous value and showing the error, if any. */
  form: (previous: V | undefined, error: E | undefined) => Dialog.IBodyWidget<V> & Widget;
  /** The request body from a value, or the error to show (a missing value). */
  prepare: (value: V) => { body?: B; error?: E };
  /** Send the body; what it resolves with is the loop's result. */
  send: (body: B) => Promise<T>;
  /** The error to show in the form for a refused `send`. */
  refused: (error: unknown) => E;
}

/**
 * Show a form dialog and submit what it gives; on an error (a missing value, the server
 * refusing a value or the submission) the form opens again with it. Resolves with what `send`
 * resolved with, or null if the user canceled.
 */
export async function formLoop<V, E, B, T>(o: IFormLoop<V, E, B, T>): Promise<T | null> {
  let previous: V | undefined;
  let error: E | undefined;
  for (;;) {
    const result = await showDialog<V>({
      title: o.title,
      body: o.form(previous, error),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: o.okLabel })],
      focusNodeSelector: o.focusNodeSelector,
      hasClose: true
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    previous = result.value;
    const { body, error: missing } = o.prepare(previous);
    if (!body) {
      error = missing;
      continue;
    }
    try {
      return await o.send(body);
    } catch (e) {
      error = o.refused(e);
    }
  }
}

/** The submission of the notebook at `path` from the form's value, or what is missing. */
export function jobSubmission(
  path: string,
  parameters: INotebookParameter[],
  value: IRunJobValue
): { body?: INotebookSubmission; error?: IRunJobError } {
  const { literals, error } = literalParameters(parameters, value.texts);
  if (error) {
    return { error };
  }
  return {
    body: {
      notebook: path,
      literal_parameters: literals,
      environment: value.environment === KERNEL_PYTHON ? null : value.environment,
      compute: value.compute || null
    }
  };
}

/**
 * Show the form for the notebook at `path` (relative to the server root) and submit it.
 * Resolves with the submitted job, or null if the user canceled. Errors (a missing value, the
 * server refusing a value or the submission) are shown in the form, which opens again.
 */
export async function runAsJob(service: MlwsService, path: string): Promise<IJob | null> {
  const choices = await loadChoices(service, path);
  return formLoop<IRunJobValue, IRunJobError, INotebookSubmission, IJob>({
    title: 'Run as job',
    okLabel: 'Submit',
    focusNodeSelector: '.jp-mlws-param-input',
    form: (previous, error) => new RunJobForm(choices, previous, error),
    prepare: value => jobSubmission(path, choices.parameters, value),
    send: body => service.submitNotebook(body),
    refused: submissionError
  });
}

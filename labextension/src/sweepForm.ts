/**
 * "Run as sweep…": a form to run the current notebook over a search space — one row per
 * parameter of its parameters cell with its value and a search expression (`choice(...)`,
 * `uniform(a, b)`...; left empty, the value stays fixed), the primary metric and its goal, the
 * number of trials, the concurrency, the sampling and early termination, environment and
 * compute. It submits through `POST /sweeps`; a refused expression or value is shown beside
 * its input with the server's message, and the form opens again.
 */
import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { MlwsApiError } from './request';
import {
  el,
  errorText,
  formLoop,
  formStart,
  IRunJobChoices,
  KERNEL_PYTHON,
  literalParameters,
  loadChoices
} from './runJob';
import { IJob, INotebookParameter, INotebookSweepSubmission, MlwsService } from './service';

/** What the form returns. */
export interface IRunSweepValue {
  environment: string;
  compute: string;
  /** Parameter name -> value typed (a fixed value, when it is not swept). */
  texts: Record<string, string>;
  /** Parameter name -> search expression typed ('' = not swept). */
  searches: Record<string, string>;
  metric: string;
  goal: 'maximize' | 'minimize';
  maxTrials: string;
  maxConcurrent: string;
  sampling: 'random' | 'grid' | 'bayesian';
  earlyTermination: '' | 'bandit' | 'median' | 'truncation';
}

/** Why the last submission was refused; `name` and `field` say which input it is about. */
export interface IRunSweepError {
  message: string;
  name?: string;
  field?: 'search' | 'value' | 'metric';
}

/** An example expression for a parameter of this type (the search input's placeholder). */
export function exampleExpression(p: INotebookParameter): string {
  switch (p.type) {
    case 'int':
      return 'choice(1, 2, 4) or randint(10)';
    case 'float':
      return 'uniform(0.0, 1.0) or loguniform(-4, 2)';
    case 'bool':
      return 'choice(True, False)';
    case 'str':
      return `choice(${p.default ?? '"a"'}, "b")`;
    default:
      return 'choice(...) or uniform(a, b)';
  }
}

function select<T extends string>(
  form: HTMLElement,
  label: string,
  cls: string,
  options: [T, string][],
  value: T
): HTMLSelectElement {
  const row = el('label', { class: 'jp-mlws-run-field' });
  row.appendChild(el('span', { class: 'jp-mlws-run-label' }, label));
  const node = el('select', { class: `jp-mod-styled ${cls}` });
  for (const [v, text] of options) {
    node.appendChild(el('option', { value: v }, text));
  }
  node.value = value;
  row.appendChild(node);
  form.appendChild(row);
  return node;
}

function input(
  form: HTMLElement,
  label: string,
  cls: string,
  value: string,
  attrs: Record<string, string> = {}
): HTMLInputElement {
  const row = el('label', { class: 'jp-mlws-run-field' });
  row.appendChild(el('span', { class: 'jp-mlws-run-label' }, label));
  const node = el('input', { class: `jp-mod-styled ${cls}`, spellcheck: 'false', ...attrs });
  node.value = value;
  row.appendChild(node);
  form.appendChild(row);
  return node;
}

/** The body of the dialog. */
export class RunSweepForm extends Widget implements Dialog.IBodyWidget<IRunSweepValue> {
  constructor(choices: IRunJobChoices, previous?: IRunSweepValue, error?: IRunSweepError) {
    super({ node: el('form', { class: 'jp-mlws-run-form jp-mlws-sweep-form' }) });
    const form = this.node as HTMLFormElement;
    const known = choices.parameters.some(p => p.name === error?.name);
    const what = error?.field === 'search' ? 'search expression' : 'value';
    const text = !error
      ? null
      : known && error.field !== 'metric'
        ? `The sweep was not submitted: the ${what} of ${error.name} was refused.`
        : error.message;
    const start = formStart(form, choices, text, previous);
    this._env = start.env;
    this._compute = start.compute;
    this.params(form, choices, previous, known ? error : undefined);

    const objective = el('fieldset', { class: 'jp-mlws-run-params jp-mlws-sweep-objective' });
    objective.appendChild(el('legend', {}, 'Objective and limits'));
    this._metric = input(
      objective,
      'Primary metric',
      'jp-mlws-sweep-metric',
      previous?.metric ?? '',
      { placeholder: 'what the notebook logs, e.g. accuracy' }
    );
    if (error?.field === 'metric') {
      this._metric.setAttribute('aria-invalid', 'true');
      this._invalid = this._metric;
    }
    this._goal = select(objective, 'Goal', 'jp-mlws-sweep-goal',
      [['maximize', 'maximize'], ['minimize', 'minimize']], previous?.goal ?? 'maximize');
    this._maxTrials = input(objective, 'Max trials', 'jp-mlws-sweep-max-trials',
      previous?.maxTrials ?? '20', { type: 'number', min: '1' });
    this._maxConcurrent = input(objective, 'Max concurrent', 'jp-mlws-sweep-max-concurrent',
      previous?.maxConcurrent ?? '2', { type: 'number', min: '1' });
    this._sampling = select(objective, 'Sampling', 'jp-mlws-sweep-sampling',
      [['random', 'random'], ['grid', 'grid (choices only)'], ['bayesian', 'bayesian (TPE)']],
      previous?.sampling ?? 'random');
    this._early = select(objective, 'Early termination', 'jp-mlws-sweep-early',
      [['', 'none'], ['bandit', 'bandit'], ['median', 'median stopping'],
        ['truncation', 'truncation selection']], previous?.earlyTermination ?? '');
    form.appendChild(objective);
    form.appendChild(
      el('div', { class: 'jp-mlws-muted jp-mlws-run-note' },
        'A parameter with a search expression is swept (choice, randint, uniform, quniform, ' +
          'loguniform — its bounds are exponents —, normal...); the others keep the value ' +
          "beside it, read as the CLI's -p reads it. The notebook is saved first.")
    );
  }

  private params(
    form: HTMLElement,
    choices: IRunJobChoices,
    previous?: IRunSweepValue,
    error?: IRunSweepError
  ): void {
    const fieldset = el('fieldset', { class: 'jp-mlws-run-params' });
    fieldset.appendChild(el('legend', {}, 'Parameters: value, or a search expression'));
    if (choices.parametersError) {
      fieldset.appendChild(el('div', { class: 'jp-mlws-error' }, choices.parametersError));
    } else if (choices.parameters.length === 0) {
      fieldset.appendChild(
        el('div', { class: 'jp-mlws-muted jp-mlws-run-noparams' },
          "This notebook has no cell tagged 'parameters': there is nothing to sweep.")
      );
    }
    for (const p of choices.parameters) {
      const row = el('div', { class: 'jp-mlws-run-field jp-mlws-sweep-param' });
      const name = el('span', { class: 'jp-mlws-run-label' }, p.name);
      if (p.type) {
        name.appendChild(el('span', { class: 'jp-mlws-muted' }, `: ${p.type}`));
      }
      row.appendChild(name);
      const pair = el('span', { class: 'jp-mlws-sweep-pair' });
      const value = el('input', {
        class: 'jp-mod-styled jp-mlws-param-input',
        'data-mlws-param': p.name,
        'aria-label': `${p.name} value`,
        spellcheck: 'false',
        placeholder: p.default ?? ''
      });
      value.value = previous?.texts[p.name] ?? p.default ?? '';
      const search = el('input', {
        class: 'jp-mod-styled jp-mlws-param-input jp-mlws-search-expr',
        'data-mlws-search': p.name,
        'aria-label': `${p.name} search expression`,
        spellcheck: 'false',
        placeholder: exampleExpression(p)
      });
      search.value = previous?.searches[p.name] ?? '';
      const sync = () => {
        value.disabled = search.value.trim() !== '';
      };
      search.addEventListener('input', sync);
      sync();
      pair.appendChild(value);
      pair.appendChild(search);
      row.appendChild(pair);
      fieldset.appendChild(row);
      if (error?.name === p.name) {
        const bad = error.field === 'search' ? search : value;
        bad.setAttribute('aria-invalid', 'true');
        fieldset.appendChild(
          el('div', {
            class: 'jp-mlws-error jp-mlws-param-error',
            'data-mlws-param-error': p.name
          }, error.message)
        );
        this._invalid = bad;
      }
      this._values.set(p.name, value);
      this._searches.set(p.name, search);
    }
    form.appendChild(fieldset);
  }

  getValue(): IRunSweepValue {
    const texts: Record<string, string> = {};
    const searches: Record<string, string> = {};
    for (const [name, node] of this._values) {
      texts[name] = node.value;
      searches[name] = this._searches.get(name)?.value ?? '';
    }
    return {
      environment: this._env.value,
      compute: this._compute.value,
      texts,
      searches,
      metric: this._metric.value,
      goal: this._goal.value as IRunSweepValue['goal'],
      maxTrials: this._maxTrials.value,
      maxConcurrent: this._maxConcurrent.value,
      sampling: this._sampling.value as IRunSweepValue['sampling'],
      earlyTermination: this._early.value as IRunSweepValue['earlyTermination']
    };
  }

  protected onAfterAttach(): void {
    const first = this._searches.values().next().value as HTMLInputElement | undefined;
    (this._invalid ?? first ?? this._metric).focus();
  }

  private _env: HTMLSelectElement;
  private _compute: HTMLSelectElement;
  private _metric: HTMLInputElement;
  private _goal: HTMLSelectElement;
  private _maxTrials: HTMLInputElement;
  private _maxConcurrent: HTMLInputElement;
  private _sampling: HTMLSelectElement;
  private _early: HTMLSelectElement;
  private _values = new Map<string, HTMLInputElement>();
  private _searches = new Map<string, HTMLInputElement>();
  private _invalid?: HTMLInputElement;
}

function count(text: string): number | null {
  const n = Number(text.trim());
  return text.trim() !== '' && Number.isInteger(n) && n >= 1 ? n : null;
}

/** The body of POST /sweeps from the form, or what is missing in it. */
export function sweepSubmission(
  path: string,
  parameters: INotebookParameter[],
  value: IRunSweepValue
): { body?: INotebookSweepSubmission; error?: IRunSweepError } {
  const search: Record<string, string> = {};
  for (const [name, text] of Object.entries(value.searches)) {
    if (text.trim()) {
      search[name] = text.trim();
    }
  }
  if (Object.keys(search).length === 0) {
    return {
      error: {
        message: 'Give at least one parameter a search expression, e.g. uniform(0, 1).'
      }
    };
  }
  if (!value.metric.trim()) {
    return {
      error: { field: 'metric', message: 'Name the primary metric the notebook logs.' }
    };
  }
  const maxTrials = count(value.maxTrials);
  const maxConcurrent = count(value.maxConcurrent);
  if (maxTrials === null || maxConcurrent === null) {
    return { error: { message: 'Max trials and max concurrent are whole numbers of 1 or more.' } };
  }
  const fixed = parameters.filter(p => !(p.name in search));
  const { literals, error } = literalParameters(fixed, value.texts);
  if (error) {
    return { error: { message: error.message, name: error.parameter, field: 'value' } };
  }
  return {
    body: {
      notebook: path,
      search,
      literal_parameters: literals,
      metric: value.metric.trim(),
      goal: value.goal,
      max_trials: maxTrials,
      max_concurrent: Math.min(maxConcurrent, maxTrials),
      sampling: value.sampling,
      early_termination: value.earlyTermination || null,
      environment: value.environment === KERNEL_PYTHON ? null : value.environment,
      compute: value.compute || null
    }
  };
}

/** The server's refusal, tied to the input it names if any. */
export function sweepError(error: unknown): IRunSweepError {
  if (!(error instanceof MlwsApiError)) {
    return { message: `The sweep was not submitted: ${errorText(error)}` };
  }
  const details = error.details ?? {};
  if (error.status === 400) {
    if (details.field === 'search' && typeof details.name === 'string') {
      return { message: error.display, name: details.name, field: 'search' };
    }
    const name = details.field === 'literal_parameters' ? details.name : details.parameter;
    if (typeof name === 'string') {
      return { message: error.display, name, field: 'value' };
    }
  }
  return { message: `The sweep was not submitted: ${error.display}` };
}

/**
 * Show the form for the notebook at `path` (relative to the server root) and submit it.
 * Resolves with the sweep job, or null if the user canceled.
 */
export async function runAsSweep(service: MlwsService, path: string): Promise<IJob | null> {
  const choices = await loadChoices(service, path);
  return formLoop<IRunSweepValue, IRunSweepError, INotebookSweepSubmission, IJob>({
    title: 'Run as sweep',
    okLabel: 'Start sweep',
    focusNodeSelector: '.jp-mlws-search-expr',
    form: (previous, error) => new RunSweepForm(choices, previous, error),
    prepare: value => sweepSubmission(path, choices.parameters, value),
    send: body => service.submitSweep(body),
    refused: sweepError
  });
}

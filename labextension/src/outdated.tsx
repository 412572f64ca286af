/**
 * Environments built on a base image that has moved since (a patched base): the "outdated"
 * marker of the Environments list and of the deployments serving them in the Endpoints view,
 * and the "Rebuild" / "Rebuild and redeploy" actions (what `mlws env rebuild NAME:VER
 * [--redeploy]` does), with a confirmation, the progress and the server's typed error.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import * as React from 'react';

import { MlwsApiError } from './request';
import { IOutdatedEnvironment, IRebuildOperation, MlwsService } from './service';

/** How often a running rebuild is asked for its progress (ms). */
export const REBUILD_POLL_MS = 1000;

function errorText(error: unknown): string {
  if (error instanceof MlwsApiError) {
    return error.display;
  }
  return (error as Error)?.message ?? String(error);
}

/** Why an environment version is outdated, in a few words. */
export function outdatedReason(row: IOutdatedEnvironment): string {
  return row.base_patched_at
    ? `base patched on ${row.base_patched_at.slice(0, 10)}`
    : `base ${row.base_image} moved`;
}

/**
 * The outdated environment versions (fetched on each refresh and after a rebuild); `reload`
 * fetches them again. An error leaves the list empty (the marker is a hint, not a view).
 */
export function useOutdated(
  service: MlwsService,
  refreshTick: number
): { items: IOutdatedEnvironment[]; reload: () => void } {
  const [items, setItems] = React.useState<IOutdatedEnvironment[]>([]);
  const [tick, setTick] = React.useState(0);
  React.useEffect(() => {
    let current = true;
    service
      .outdatedEnvironments()
      .then(found => current && setItems(found))
      .catch(() => current && setItems([]));
    return () => {
      current = false;
    };
  }, [refreshTick, tick]);
  return { items, reload: () => setTick(t => t + 1) };
}

/** The small "outdated" label, with the reason in its tooltip. */
export function OutdatedBadge(props: { title: string; of?: string }): JSX.Element {
  return (
    <span className="jp-mlws-outdated-badge" title={props.title} data-mlws-outdated-of={props.of}>
      outdated
    </span>
  );
}

/** A rebuild in progress or finished, as shown under its environment. */
interface IRebuildState {
  status: 'confirming' | 'running' | 'succeeded' | 'failed';
  text: string;
}

function outcome(op: IRebuildOperation): IRebuildState {
  if (op.status === 'failed') {
    const e = op.error;
    return { status: 'failed', text: e ? [e.message, e.hint].filter(Boolean).join(' ') : '' };
  }
  if (op.status === 'succeeded') {
    const r = op.result;
    const rolled = r?.redeployed?.length ? `; rolled ${r.redeployed.join(', ')}` : '';
    const how = r?.rebuilt ? (r.from_lock ? 'Rebuilt from its lock' : 'Rebuilt') : 'Current';
    return { status: 'succeeded', text: `${how}${rolled}.` };
  }
  const last = op.log.trim().split('\n').pop() ?? '';
  return { status: 'running', text: last ? `Rebuilding… ${last}` : 'Rebuilding…' };
}

async function confirmRebuild(row: IOutdatedEnvironment, redeploy: boolean): Promise<boolean> {
  const rolls = redeploy ? ` and roll ${row.deployments.join(', ')} to the new image` : '';
  const result = await showDialog({
    title: `Rebuild ${row.environment}?`,
    body:
      `Its image was built on ${row.base_image} before the base changed ` +
      `(${outdatedReason(row)}). This rebuilds it on the current base from its lock${rolls}; ` +
      'the old image keeps serving until the rebuild succeeds.',
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: redeploy ? 'Rebuild and redeploy' : 'Rebuild' })
    ]
  });
  return result.button.accept;
}

/** Under an environment name: each outdated version with its reason and the actions. */
export function OutdatedNote(props: {
  service: MlwsService;
  rows: IOutdatedEnvironment[];
  onDone: () => void;
}): JSX.Element | null {
  const { service } = props;
  const [states, setStates] = React.useState<Record<string, IRebuildState>>({});
  const set = (ref: string, state: IRebuildState) =>
    setStates(prev => ({ ...prev, [ref]: state }));

  const follow = async (row: IOutdatedEnvironment) => {
    for (;;) {
      const op = await service.getRebuild(row.name, row.version);
      const state = outcome(op);
      set(row.environment, state);
      if (state.status !== 'running') {
        props.onDone();
        return;
      }
      await new Promise(resolve => setTimeout(resolve, REBUILD_POLL_MS));
    }
  };

  const rebuild = async (row: IOutdatedEnvironment, redeploy: boolean) => {
    set(row.environment, { status: 'confirming', text: '' });
    if (!(await confirmRebuild(row, redeploy))) {
      setStates(prev => {
        const { [row.environment]: _dropped, ...rest } = prev;
        return rest;
      });
      return;
    }
    try {
      set(row.environment, outcome(await service.startRebuild(row.name, row.version, redeploy)));
      await follow(row);
    } catch (error) {
      set(row.environment, { status: 'failed', text: errorText(error) });
    }
  };

  const refs = new Set([...props.rows.map(r => r.environment), ...Object.keys(states)]);
  if (refs.size === 0) {
    return null;
  }
  return (
    <div className="jp-mlws-outdated-note">
      {[...refs].map(ref => {
        const row = props.rows.find(r => r.environment === ref);
        const state = states[ref];
        const busy = state?.status === 'running' || state?.status === 'confirming';
        return (
          <div key={ref} className="jp-mlws-outdated" data-mlws-outdated={ref}>
            {row && (
              <div className="jp-mlws-version-line">
                <span className="jp-mlws-badge">{row.version}</span>
                <span className="jp-mlws-outdated-reason">{outdatedReason(row)}</span>
                <button
                  className="jp-mlws-small-button jp-mlws-rebuild"
                  disabled={busy}
                  onClick={() => void rebuild(row, false)}
                >
                  Rebuild
                </button>
                {row.deployments.length > 0 && (
                  <button
                    className="jp-mlws-small-button jp-mlws-rebuild-redeploy"
                    disabled={busy}
                    title={`Also roll ${row.deployments.join(', ')}`}
                    onClick={() => void rebuild(row, true)}
                  >
                    Rebuild and redeploy
                  </button>
                )}
              </div>
            )}
            {state && state.status !== 'confirming' && (
              <div
                className={
                  state.status === 'failed' ? 'jp-mlws-error' : 'jp-mlws-rebuild-progress'
                }
                data-mlws-rebuild-status={state.status}
              >
                {state.text}
              </div>
            )}
          </div>
        );
      })}
    </div>
  );
}

/**
 * jupyter-mlws: the JupyterLab face of jupyter_mlws.
 *
 * - `jupyter-mlws:sidebar` — the "ML Workspace" panel (models, data, environments, components,
 *   jobs, online endpoints) and the job detail tabs; provides `IMlwsWorkspace`.
 * - `jupyter-mlws:run-as-job` — the commands "Run as job…" and "Run as sweep…" in the
 *   palette, the notebook toolbar and the notebook context menu.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  CommandToolbarButton,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  WidgetTracker
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { fastForwardIcon, LabIcon, runIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject, Token } from '@lumino/coreutils';

import { createJobPanel, JobDetailWidget } from './jobDetail';
import { MlwsApiError } from './request';
import { runAsJob } from './runJob';
import { runAsSweep } from './sweepForm';
import { IJob, MlwsService } from './service';
import { MlwsSidebar } from './sidebar';

export * from './service';
export * from './endpointService';
export { requestAPI, MlwsApiError } from './request';

/** Command ids. */
export namespace CommandIDs {
  export const openPanel = 'mlws:open-panel';
  export const refresh = 'mlws:refresh';
  export const openJob = 'mlws:open-job';
  export const runAsJob = 'mlws:run-as-job';
  export const runAsSweep = 'mlws:run-as-sweep';
}

/** What the sidebar plugin provides to others. */
export interface IMlwsWorkspace {
  readonly service: MlwsService;
  readonly sidebar: MlwsSidebar;
}

export const IMlwsWorkspace = new Token<IMlwsWorkspace>(
  'jupyter-mlws:IMlwsWorkspace',
  'The ML Workspace panel and the REST client of jupyter_mlws.'
);

const CATEGORY = 'ML Workspace';

const sidebarPlugin: JupyterFrontEndPlugin<IMlwsWorkspace> = {
  id: 'jupyter-mlws:sidebar',
  description: 'The ML Workspace panel: models, data, environments, components and jobs.',
  autoStart: true,
  provides: IMlwsWorkspace,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ): IMlwsWorkspace => {
    const service = new MlwsService();
    const tracker = new WidgetTracker<MainAreaWidget<JobDetailWidget>>({
      namespace: 'mlws-job'
    });

    const sidebar = new MlwsSidebar({
      service,
      openJob: id => void app.commands.execute(CommandIDs.openJob, { id })
    });
    sidebar.title.caption = 'ML Workspace';
    app.shell.add(sidebar, 'left', { rank: 450 });

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Open the ML Workspace panel',
      caption: 'Models, data, environments, components and jobs',
      execute: () => app.shell.activateById(sidebar.id)
    });

    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh the ML Workspace panel',
      execute: () => sidebar.refresh()
    });

    app.commands.addCommand(CommandIDs.openJob, {
      label: args => (args.id ? `Open job ${args.id}` : 'Open a job'),
      execute: args => {
        const id = String(args.id ?? '');
        if (!id) {
          return;
        }
        const open = tracker.find(w => w.content.jobId === id);
        if (open) {
          app.shell.activateById(open.id);
          return open;
        }
        const panel = createJobPanel(service, id, {
          openPath: path => app.commands.execute('docmanager:open', { path }),
          jobChanged: () => sidebar.refresh(),
          openJob: other => void app.commands.execute(CommandIDs.openJob, { id: other })
        });
        void tracker.add(panel);
        app.shell.add(panel, 'main');
        app.shell.activateById(panel.id);
        return panel;
      }
    });

    if (palette) {
      palette.addItem({ command: CommandIDs.openPanel, category: CATEGORY });
      palette.addItem({ command: CommandIDs.refresh, category: CATEGORY });
    }
    if (restorer) {
      restorer.add(sidebar, 'jupyter-mlws-sidebar');
      void restorer.restore(tracker, {
        command: CommandIDs.openJob,
        args: w => ({ id: w.content.jobId }),
        name: w => w.content.jobId
      });
    }
    return { service, sidebar };
  }
};

const runAsJobPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlws:run-as-job',
  description: 'Run the current notebook as a jupyter_mlws job.',
  autoStart: true,
  requires: [IMlwsWorkspace, INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    workspace: IMlwsWorkspace,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null
  ): void => {
    const { service, sidebar } = workspace;

    /** The current notebook's path (saved first: run what the user sees), or `args.path`. */
    const notebookPath = async (args: ReadonlyPartialJSONObject): Promise<string> => {
      if (typeof args.path === 'string' && args.path) {
        return args.path;
      }
      const panel: NotebookPanel | null = notebooks.currentWidget;
      if (!panel) {
        return '';
      }
      await panel.context.ready;
      if (panel.context.model.dirty) {
        await panel.context.save();
      }
      return app.serviceManager.contents.localPath(panel.context.path);
    };

    /** Reveal a submitted job in the panel and say so. */
    const submitted = (job: IJob, what: string): IJob => {
      sidebar.revealJob(job);
      app.shell.activateById(sidebar.id);
      Notification.success(`Submitted ${what} ${job.display_name || job.id} (${job.status})`, {
        autoClose: 4000,
        actions: [
          {
            label: 'Open',
            callback: () => void app.commands.execute(CommandIDs.openJob, { id: job.id })
          }
        ]
      });
      return job;
    };

    const failed = (what: string, error: unknown): void => {
      const message = error instanceof MlwsApiError ? error.display : (error as Error).message;
      Notification.error(`${what} failed: ${message}`, { autoClose: false });
    };

    /** A command that shows a submission form for the notebook and reveals what it submitted. */
    const addRunCommand = (
      id: string,
      options: {
        label: string;
        caption: string;
        icon: LabIcon;
        what: 'job' | 'sweep';
        run: (service: MlwsService, path: string) => Promise<IJob | null>;
      }
    ): void => {
      app.commands.addCommand(id, {
        label: options.label,
        caption: options.caption,
        icon: args => (args.toolbar ? options.icon : undefined),
        isEnabled: args => typeof args.path === 'string' || !!notebooks.currentWidget,
        execute: async args => {
          const path = await notebookPath(args);
          if (!path) {
            return;
          }
          try {
            const job = await options.run(service, path);
            return job ? submitted(job, options.what) : undefined;
          } catch (error) {
            failed(options.label.replace('…', ''), error);
          }
        }
      });
    };

    addRunCommand(CommandIDs.runAsJob, {
      label: 'Run as job…',
      caption: 'Run this notebook as a job (environment, compute, parameters)',
      icon: runIcon,
      what: 'job',
      run: runAsJob
    });
    addRunCommand(CommandIDs.runAsSweep, {
      label: 'Run as sweep…',
      caption: 'Run this notebook over a search space of its parameters (a sweep of trial jobs)',
      icon: fastForwardIcon,
      what: 'sweep',
      run: runAsSweep
    });

    if (palette) {
      palette.addItem({ command: CommandIDs.runAsJob, category: CATEGORY });
      palette.addItem({ command: CommandIDs.runAsSweep, category: CATEGORY });
    }
    app.contextMenu.addItem({
      command: CommandIDs.runAsJob,
      selector: '.jp-Notebook',
      rank: 100
    });
    app.contextMenu.addItem({
      command: CommandIDs.runAsSweep,
      selector: '.jp-Notebook',
      rank: 101
    });

    // A toolbar button on every notebook.
    const addButton = (
      panel: NotebookPanel,
      id: string,
      label: string,
      className: string,
      name: string,
      after: string
    ): void => {
      const button = new CommandToolbarButton({
        commands: app.commands,
        id,
        args: { toolbar: true },
        label
      });
      button.addClass(className);
      if (!panel.toolbar.insertAfter(after, name, button)) {
        panel.toolbar.addItem(name, button);
      }
    };
    notebooks.widgetAdded.connect((_, panel) => {
      addButton(panel, CommandIDs.runAsJob, 'Run as job', 'jp-mlws-run-button',
        'mlws-run-as-job', 'cellType');
      addButton(panel, CommandIDs.runAsSweep, 'Run as sweep', 'jp-mlws-sweep-button',
        'mlws-run-as-sweep', 'mlws-run-as-job');
    });
  }
};

export default [sidebarPlugin, runAsJobPlugin];

/** Small display helpers shared by the sidebar and the job view. */
import { Time } from '@jupyterlab/coreutils';

/** "3 minutes ago" with the exact local time in the tooltip. */
export function when(value?: string | null): { text: string; title: string } {
  if (!value) {
    return { text: '', title: '' };
  }
  try {
    return { text: Time.formatHuman(value), title: Time.format(value) };
  } catch {
    return { text: value, title: value };
  }
}

/** 1536 -> "1.5 KB" */
export function bytes(size?: number | null): string {
  if (size === undefined || size === null) {
    return '';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** 75.2 -> "1m 15s" */
export function duration(seconds?: number | null): string {
  if (seconds === undefined || seconds === null) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  }
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) {
    return `${m}m ${s}s`;
  }
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

/** The short form of a content hash. */
export function shortHash(hash?: string | null): string {
  return hash ? hash.slice(0, 12) : '';
}

/** A CSS-class-safe form of a job status: "Running" -> "running". */
export function statusClass(status: string): string {
  return `jp-mlws-status-${status.toLowerCase().replace(/[^a-z]/g, '')}`;
}

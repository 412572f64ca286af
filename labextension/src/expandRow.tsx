/** The clickable header row of an expandable list item (an asset name, an endpoint). */
import { caretDownIcon, caretRightIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

/** A caret and `children`; click, Enter or Space toggles. */
export function ExpandRow(props: {
  open: boolean;
  title?: string;
  onToggle: () => void;
  children?: React.ReactNode;
}): JSX.Element {
  const Caret = props.open ? caretDownIcon : caretRightIcon;
  return (
    <div
      className="jp-mlws-asset-row"
      role="button"
      tabIndex={0}
      aria-expanded={props.open}
      title={props.title}
      onClick={props.onToggle}
      onKeyDown={e => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          props.onToggle();
        }
      }}
    >
      <Caret.react tag="span" className="jp-mlws-caret" />
      {props.children}
    </div>
  );
}

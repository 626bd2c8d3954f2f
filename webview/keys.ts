// Panel-wide keys: arrows in the view tabs, and shortcuts anywhere outside a form control
// (? help, [ ] layer, , . head, V value weighting, 1 2 3 view, Escape clears the token; a long
// run's window: + − zoom, PageUp PageDown scroll). The views handle their own keys first. help.ts
// lists them all: keep it in step.

import type { Aggregation, Weighting } from '../src/protocol/attention';
import type { UiState, ViewName } from './context';
import type { RunData } from './store';
import { VIEWS } from './chrome';

/** What the keys act on: the app. */
export interface KeyTarget {
  readonly run: RunData | null;
  readonly ui: UiState;
  setView(view: ViewName): void;
  focusView(view: ViewName): void;
  focusTab(i: number): void;
  focusHead(layer: number, agg: Aggregation): void;
  /** Attention or value-weighted attention. */
  setWeights(w: Weighting): void;
  /** Clears the hovered and the cursor token; false when there was none. */
  clearToken(): boolean;
  /** Opens the keyboard-shortcut help (it closes itself on ? and Escape). */
  showHelp(): void;
  /** A long run's window: zoom in (1: fewer tokens) or out; false when there is no window. */
  zoomWindow(dir: 1 | -1): boolean;
  /** A long run's window: half a window later (1) or earlier; false when there is no window. */
  pageKey(dir: 1 | -1): boolean;
}

/** Arrows, Home and End move between the view tabs (the ARIA tabs pattern). */
export function onTabKey(e: KeyboardEvent, app: KeyTarget): void {
  const i = VIEWS.findIndex((v) => v.name === app.ui.view);
  let n = -1;
  if (e.key === 'ArrowRight') n = (i + 1) % VIEWS.length;
  else if (e.key === 'ArrowLeft') n = (i + VIEWS.length - 1) % VIEWS.length;
  else if (e.key === 'Home') n = 0;
  else if (e.key === 'End') n = VIEWS.length - 1;
  if (n < 0) return;
  e.preventDefault();
  app.setView(VIEWS[n].name);
  app.focusTab(n);
}

export function onGlobalKey(e: KeyboardEvent, app: KeyTarget): void {
  const t = e.target as HTMLElement;
  // Form controls keep their keys; the help dialog handles its own.
  if (t.closest('select, input, textarea, dialog')) return;
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.key === '?') {
    e.preventDefault();
    app.showHelp();
    return;
  }
  const run = app.run;
  if (!run) return;
  switch (e.key) {
    case 'Escape':
      if (app.clearToken()) e.preventDefault();
      return;
    case '[':
    case ']': {
      e.preventDefault();
      app.focusHead(app.ui.layer + (e.key === ']' ? 1 : -1), app.ui.agg);
      return;
    }
    case ',':
    case '.': {
      e.preventDefault();
      // A long run has no rollout (it needs whole matrices).
      const order: Aggregation[] = ['mean', ...(run.long ? [] : ['rollout' as const]), ...Array.from({ length: run.H }, (_, h) => h)];
      const i = order.findIndex((a) => a === app.ui.agg);
      const n = (i + (e.key === '.' ? 1 : order.length - 1)) % order.length;
      app.focusHead(app.ui.layer, order[n]);
      return;
    }
    case 'v':
    case 'V':
      e.preventDefault();
      app.setWeights(app.ui.weights === 'value' ? 'attention' : 'value');
      return;
    case '+':
    case '=':
    case '-':
    case '−':
      if (app.zoomWindow(e.key === '+' || e.key === '=' ? 1 : -1)) e.preventDefault();
      return;
    case 'PageUp':
    case 'PageDown':
      // The views scroll their own window on these keys; elsewhere they scroll it here.
      if (!e.defaultPrevented && app.pageKey(e.key === 'PageDown' ? 1 : -1)) e.preventDefault();
      return;
    case '1':
    case '2':
    case '3': {
      e.preventDefault();
      const v = VIEWS[Number(e.key) - 1].name;
      app.setView(v);
      app.focusView(v);
      return;
    }
  }
}

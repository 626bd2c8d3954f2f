// What the views see of the app: the current run, the theme, the UI state and the token the user
// is pointing at. Views never talk to the host; the app does. For a long run the Heads and Matrix
// views get a window of it (webview/longView.ts: their run, and token indices local to it).

import type { Aggregation, Weighting } from '../src/protocol/attention';
import type { RunData } from './store';
import type { Theme } from './theme';

export type ViewName = 'model' | 'head' | 'matrix';

/** Which attention of an encoder-decoder run the panel shows: cross (the Alignment view), or one side's self-attention in the three views. */
export type ShownPart = 'cross' | 'encoder' | 'decoder';

export interface UiState {
  view: ViewName;
  /** Focused layer (0-based). */
  layer: number;
  /** Focused head, mean or rollout. */
  agg: Aggregation;
  /** What the head view draws (toggle chips); defaults to [agg]. */
  selected: Aggregation[];
  hideSpecial: boolean;
  /** What the matrices weigh: attention, or value-weighted attention (the run's value norms asked of the host). */
  weights: Weighting;
  /** Encoder-decoder runs: which attention is shown (a run that is not one ignores it). */
  part: ShownPart;
  /** Weights below are not drawn. */
  threshold: number;
}

/** A token the user points at: as a query (row) or as a key (column). `index` is into run.tokens. */
export interface TokenRef {
  index: number;
  side: 'q' | 'k';
}

export interface ViewContext {
  readonly run: RunData | null;
  readonly theme: Theme;
  readonly ui: UiState;
  /** The token shown as active: the pinned cursor, else the hovered token, else the cursor. */
  active(): TokenRef | null;
  /** Keyboard/click cursor and whether it is pinned (mouse hover does not override a pin). */
  readonly cursor: TokenRef | null;
  readonly pinned: boolean;
  setHover(ref: TokenRef | null): void;
  setCursor(ref: TokenRef | null, pinned: boolean): void;
  /** Focus a layer/head (model grid click, chips); optionally switch view. */
  focusHead(layer: number, agg: Aggregation, view?: ViewName): void;
  /** Head-view toggles. */
  setSelected(selected: Aggregation[]): void;
  /** Screen-reader announcement (polite). */
  announce(text: string): void;
  /** The processed matrix for the layer, or null if not available yet (rollout: starts computing it). */
  matrix(layer: number, agg: Aggregation): Float32Array | null;
  /** Called by the model view as thumbnails get painted. */
  reportPainted(painted: number, total: number): void;
  /** Whether "Why this weight?" can explain the weights on screen (not in the Difference mode). */
  canExplain(): boolean;
  /** Opens "Why this weight?" for tokens `query` and `key` (run.tokens indices) at the focused layer and head. */
  explain(query: number, key: number): void;
  /**
   * A long run's window (the run is a WindowRun, webview/longWindow.ts): moves it by half windows
   * past its edge to the next shown token after token `from` in direction `dir`, keeping token
   * `keep` (a matrix cell's other coordinate) in it when both fit. Returns their indices in the
   * new window (keep -1 when it left it), or null at the run's end or for a run without a window.
   */
  windowStep?(from: number, dir: 1 | -1, keep?: number): { index: number; keep: number } | null;
  /** A long run's window: moves it by half a window (PageUp / PageDown); the tokens it moved by (0 at the run's end or without a window). */
  windowPage?(dir: 1 | -1): number;
}

export interface View {
  readonly root: HTMLElement;
  /** A new run replaced the old one (`sameShape`: same layers x heads, old pixels may stay as stale). */
  setRun(sameShape: boolean): void;
  /** A layer of the current run arrived. */
  layerArrived(layer: number): void;
  /** Settings changed (threshold, hiding, focus, theme): repaint everything. */
  render(): void;
  /** The active token changed: cheap repaint. */
  renderHover(): void;
  /** Visibility changed. */
  setVisible(visible: boolean): void;
  /** Put keyboard focus in the view. */
  focus(): void;
}

// The UI state kept across panel reloads (VS Code's getState/setState), versioned and checked on
// the way in: saved state may come from an older panel.

import { parseAggregation, type Aggregation } from '../src/protocol/attention';
import type { UiState } from './context';
import { getState, setState } from './vscode';

interface Saved extends UiState {
  v: 1;
}

function readSaved(): Partial<UiState> {
  const s = getState() as Partial<Saved> | undefined;
  if (!s || typeof s !== 'object' || s.v !== 1) return {};
  const out: Partial<UiState> = {};
  if (s.view === 'model' || s.view === 'head' || s.view === 'matrix') out.view = s.view;
  if (Number.isInteger(s.layer) && (s.layer as number) >= 0) out.layer = s.layer;
  const agg = parseAggregation(String(s.agg));
  if (agg !== null) out.agg = agg;
  if (Array.isArray(s.selected)) {
    const sel = s.selected.map((a) => parseAggregation(String(a))).filter((a): a is Aggregation => a !== null);
    if (sel.length) out.selected = sel;
  }
  if (typeof s.hideSpecial === 'boolean') out.hideSpecial = s.hideSpecial;
  if (s.weights === 'attention' || s.weights === 'value') out.weights = s.weights;
  if (s.part === 'cross' || s.part === 'encoder' || s.part === 'decoder') out.part = s.part;
  if (typeof s.threshold === 'number' && s.threshold >= 0 && s.threshold <= 1) out.threshold = s.threshold;
  return out;
}

/** The saved UI state over the defaults. */
export function loadUiState(): UiState {
  const ui: UiState = { view: 'model', layer: 0, agg: 'mean', selected: ['mean'], hideSpecial: false, weights: 'attention', part: 'cross', threshold: 0, ...readSaved() };
  if (!ui.selected.length) ui.selected = [ui.agg];
  return ui;
}

export function saveUiState(u: UiState): void {
  const s: Saved = { v: 1, view: u.view, layer: u.layer, agg: u.agg, selected: u.selected, hideSpecial: u.hideSpecial, weights: u.weights, part: u.part, threshold: u.threshold };
  setState(s);
}

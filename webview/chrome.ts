// The page around the views: header (title, run facts, status), notices, the error line, the
// controls (view tabs, layer and head selects, hiding, threshold, colour legend) and the empty-page
// message. It shows state and reports what the user picks; the app decides what follows.

import { parseAggregation, type Aggregation, type Weighting } from '../src/protocol/attention';
import type { ShownPart, UiState, ViewName } from './context';
import type { RunData } from './store';
import type { Theme } from './theme';
import { el, setText, clear } from './dom';
import { ExportMenu, type ExportChoice } from './export/menu';

/** The views in tab order (keys 1, 2, 3). */
export const VIEWS: readonly { name: ViewName; label: string }[] = [
  { name: 'model', label: 'Model' },
  { name: 'head', label: 'Heads' },
  { name: 'matrix', label: 'Matrix' },
];

const LEGEND_HEAT = 'Colour scale: background is 0, foreground is 1 (square-root scale)';
const LEGEND_DIFF = 'Colour scale of the difference from the baseline: blue is less attention, the background no change, red more, up to the largest change the view shows, which it states (square-root scale). Grey: a token only one run has.';

const PIN_TITLE = 'Keep this run as the baseline: later runs (an edit, another selection) can show their difference from it';

const WEIGHTS_TITLE = 'Attention weights α, or value-weighted attention ‖α·v·W_O‖ (Kobayashi et al. 2020): how much of each word’s value reaches the output (V)';

/** What the user picked in the controls. */
export interface ChromeActions {
  view(view: ViewName): void;
  layer(layer: number): void;
  head(agg: Aggregation): void;
  hideSpecial(hide: boolean): void;
  weights(w: Weighting): void;
  /** Encoder-decoder runs: which attention to show. */
  part(p: ShownPart): void;
  /** The Continue button: the model writes after the run's text. */
  continueRun(): void;
  threshold(t: number): void;
  tabKey(e: KeyboardEvent): void;
  /** The header's "?" button: the keyboard-shortcut help. */
  help(): void;
  /** A choice in the header's Export menu. */
  exportAs(choice: ExportChoice): void;
  /** Compare: pin the run on screen as the baseline, clear the baseline, show the difference from it or not. */
  pinBaseline(): void;
  clearBaseline(): void;
  difference(on: boolean): void;
}

/** What the Compare controls show. */
export interface CompareControls {
  /** The run on screen can be pinned (it is complete). */
  canPin: boolean;
  /** Why it cannot be pinned, when that is not only that it is still arriving (the Pin button's tooltip). */
  pinTitle?: string;
  hasBaseline: boolean;
  /** The views show the difference from the baseline. */
  on: boolean;
  /** The difference can be shown (a baseline of the same model). */
  available: boolean;
  /** The baseline, what the difference shows, or why it cannot. */
  note: string;
}

export class Chrome {
  readonly header: HTMLElement;
  readonly notices: HTMLElement;
  readonly error: HTMLElement;
  /** Under the error of a failed run: which run is still on screen. */
  readonly previousNote: HTMLElement;
  readonly controls: HTMLElement;
  readonly empty: HTMLElement;
  private readonly meta: HTMLElement;
  private readonly status: HTMLElement;
  readonly helpButton: HTMLButtonElement;
  /** Shown while a run is on screen. */
  readonly exportMenu: ExportMenu;
  private readonly tabs: HTMLButtonElement[] = [];
  private readonly layerSel: HTMLSelectElement;
  private readonly headSel: HTMLSelectElement;
  private readonly hideBox: HTMLInputElement;
  private readonly weightSel: HTMLSelectElement;
  private readonly partSel: HTMLSelectElement;
  private readonly partLabel: HTMLElement;
  private readonly tablist: HTMLElement;
  private readonly thrInput: HTMLInputElement;
  private readonly thrOut: HTMLOutputElement;
  private readonly legend: HTMLCanvasElement;
  private readonly legendLow: HTMLElement;
  private readonly legendHigh: HTMLElement;
  private readonly pinButton: HTMLButtonElement;
  private readonly continueButton: HTMLButtonElement;
  private readonly diffBox: HTMLInputElement;
  private readonly clearBaselineButton: HTMLButtonElement;
  private readonly compareNote: HTMLElement;
  /** The legend shows Compare's diverging palette. */
  private difference = false;
  private theme: Theme | null = null;

  constructor(
    private readonly ui: UiState,
    actions: ChromeActions,
  ) {
    this.meta = el('span', { class: 'meta' });
    this.status = el('span', { class: 'status', role: 'status', 'aria-live': 'polite' });
    this.helpButton = el('button', { type: 'button', class: 'help-button', 'aria-label': 'Keyboard shortcuts', 'aria-haspopup': 'dialog', 'aria-controls': 'help', title: 'Keyboard shortcuts (?)', text: '?' });
    this.helpButton.addEventListener('click', () => actions.help());
    this.exportMenu = new ExportMenu((c) => actions.exportAs(c), () => (ui.view === 'model' ? 'SVG draws the Heads and Matrix views: export the Model view as a PNG.' : null));
    this.exportMenu.root.hidden = true;
    this.header = el('header', { class: 'top' }, el('h1', { class: 'title', text: 'Attention Lens' }), this.meta, this.status, this.exportMenu.root, this.helpButton);
    this.notices = el('ul', { class: 'notices', 'aria-label': 'Notices', hidden: true });
    this.error = el('div', { class: 'error', role: 'alert', hidden: true });
    this.previousNote = el('p', { class: 'previous-note', hidden: true });

    const tablist = (this.tablist = el('div', { class: 'tabs', role: 'tablist', 'aria-label': 'View' }));
    for (const v of VIEWS) {
      const b = el('button', { class: 'tab', type: 'button', role: 'tab', id: `tab-${v.name}`, 'aria-controls': `view-${v.name}`, 'data-view': v.name, text: v.label });
      b.addEventListener('click', () => actions.view(v.name));
      tablist.append(b);
      this.tabs.push(b);
    }
    tablist.addEventListener('keydown', (e) => actions.tabKey(e));
    this.layerSel = el('select', { class: 'layer', 'aria-label': 'Layer' });
    this.layerSel.addEventListener('change', () => actions.layer(Number(this.layerSel.value)));
    this.headSel = el('select', { class: 'head', 'aria-label': 'Head' });
    this.headSel.addEventListener('change', () => {
      const a = parseAggregation(this.headSel.value);
      if (a !== null) actions.head(a);
    });
    this.weightSel = el(
      'select',
      { class: 'weights', 'aria-label': 'Weights', title: WEIGHTS_TITLE },
      el('option', { value: 'attention', text: 'Attention α' }),
      el('option', { value: 'value', text: 'Value-weighted' }),
    );
    this.weightSel.addEventListener('change', () => actions.weights(this.weightSel.value === 'value' ? 'value' : 'attention'));
    this.partSel = el(
      'select',
      { class: 'part', 'aria-label': 'Attention of the encoder-decoder model' },
      el('option', { value: 'cross', text: 'Cross: target → source' }),
      el('option', { value: 'encoder', text: 'Encoder: source → source' }),
      el('option', { value: 'decoder', text: 'Decoder: target → target' }),
    );
    this.partSel.addEventListener('change', () => {
      const v = this.partSel.value;
      if (v === 'cross' || v === 'encoder' || v === 'decoder') actions.part(v);
    });
    this.partLabel = el('label', { class: 'ctl part-ctl', hidden: true }, 'Attention ', this.partSel);
    this.hideBox = el('input', { type: 'checkbox', class: 'hide-special', id: 'hide-special' });
    this.hideBox.checked = ui.hideSpecial;
    this.hideBox.addEventListener('change', () => actions.hideSpecial(this.hideBox.checked));
    this.thrInput = el('input', { type: 'range', class: 'threshold', id: 'threshold', min: 0, max: 0.5, step: 0.01, 'aria-label': 'Threshold: hide weights below' });
    this.thrInput.value = String(ui.threshold);
    this.thrOut = el('output', { class: 'thr-value', for: 'threshold' });
    this.thrInput.addEventListener('input', () => actions.threshold(Number(this.thrInput.value)));
    this.legend = el('canvas', { class: 'legend', role: 'img', 'aria-label': LEGEND_HEAT });
    this.legendLow = el('span', { text: '0' });
    this.legendHigh = el('span', { text: '1' });
    this.pinButton = el('button', { type: 'button', class: 'pin-baseline', title: PIN_TITLE, text: 'Pin as baseline' });
    this.pinButton.addEventListener('click', () => actions.pinBaseline());
    this.continueButton = el('button', { type: 'button', class: 'continue', title: 'Let the model write after this text (greedy; how many tokens: the attentionLens.maxNewTokens setting), then show the attention of the text and of what it wrote', text: 'Continue ▸', hidden: true });
    this.continueButton.addEventListener('click', () => actions.continueRun());
    this.diffBox = el('input', { type: 'checkbox', class: 'difference', id: 'difference', disabled: true });
    this.diffBox.addEventListener('change', () => actions.difference(this.diffBox.checked));
    this.clearBaselineButton = el('button', { type: 'button', class: 'clear-baseline', 'aria-label': 'Clear the baseline', title: 'Clear the baseline', text: '×', hidden: true });
    this.clearBaselineButton.addEventListener('click', () => actions.clearBaseline());
    this.compareNote = el('span', { class: 'compare-note', role: 'status' });
    this.controls = el(
      'nav',
      { class: 'controls', 'aria-label': 'Attention controls' },
      this.partLabel,
      tablist,
      el('label', { class: 'ctl' }, 'Layer ', this.layerSel),
      el('label', { class: 'ctl' }, 'Head ', this.headSel),
      el('label', { class: 'ctl' }, 'Weights ', this.weightSel),
      el('label', { class: 'ctl check', for: 'hide-special' }, this.hideBox, ' Hide special tokens'),
      el('label', { class: 'ctl', for: 'threshold' }, 'Threshold ', this.thrInput, this.thrOut),
      el('span', { class: 'ctl legend-wrap', 'aria-hidden': 'false' }, this.legendLow, this.legend, this.legendHigh),
      el(
        'span',
        { class: 'ctl compare', role: 'group', 'aria-label': 'Compare with a baseline run' },
        this.continueButton,
        this.pinButton,
        el('label', { class: 'check', for: 'difference' }, this.diffBox, ' Difference from baseline'),
        this.clearBaselineButton,
        this.compareNote,
      ),
    );
    this.empty = el('div', { class: 'empty' }, el('p', { text: 'Select text and run Attention Lens: Show Attention' }));
  }

  /** Options for a run's layers and heads. */
  fillSelects(run: RunData): void {
    clear(this.layerSel);
    for (let l = 0; l < run.L; l++) this.layerSel.append(el('option', { value: l, text: `Layer ${l + 1}` }));
    clear(this.headSel);
    // Rollout multiplies whole matrices: a long run has none (Run.longRefusal says why).
    const noRollout = run.longRefusal({ agg: 'rollout' });
    this.headSel.append(
      el('option', { value: 'mean', text: 'Mean of heads' }),
      el('option', { value: 'rollout', text: noRollout ? 'Rollout (not for long inputs)' : 'Rollout (layers 1…n)', disabled: noRollout !== null, title: noRollout ?? undefined }),
    );
    for (let h = 0; h < run.H; h++) this.headSel.append(el('option', { value: h, text: `Head ${h + 1}` }));
    this.syncControls();
  }

  /** The controls show the UI state (after a change from elsewhere: keys, the grid, a new run). */
  syncControls(): void {
    this.layerSel.value = String(this.ui.layer);
    this.headSel.value = String(this.ui.agg);
    this.hideBox.checked = this.ui.hideSpecial;
    if (!this.weightSel.disabled) this.weightSel.value = this.ui.weights;
    this.partSel.value = this.ui.part;
    this.thrInput.value = String(this.ui.threshold);
    this.showThreshold();
  }

  /** The threshold's label only: the slider itself is what the user is dragging. */
  showThreshold(): void {
    setText(this.thrOut, this.ui.threshold > 0 ? `≥ ${this.ui.threshold.toFixed(2)}` : 'off');
  }

  /** The view tabs: hidden while an encoder-decoder run shows its cross-attention (the Alignment view alone). */
  showTabs(on: boolean): void {
    this.tablist.hidden = !on;
  }

  selectTab(view: ViewName): void {
    for (const b of this.tabs) {
      const on = b.dataset.view === view;
      b.setAttribute('aria-selected', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;
    }
  }

  focusTab(i: number): void {
    this.tabs[i].focus();
  }

  /** The run's facts in the header and its notices (truncation, model warnings). */
  updateMeta(run: RunData, extraNotices: readonly string[] = []): void {
    const written = run.tokens.filter((t) => t.generated).length;
    const s2s = run.seq2seq;
    const parts = s2s
      ? [
          run.model.id,
          `encoder ${s2s.encoder.layers} × ${s2s.encoder.heads}, decoder ${run.L} layers × ${run.H} heads`,
          `${s2s.sourceTokens.length} source → ${run.T} target tokens`,
          `${s2s.forced ? 'given' : 'wrote'} “${s2s.targetText}”${s2s.finished ? '' : ' (stopped at the limit, no end token)'}`,
        ]
      : [run.model.id, `${run.L} layers × ${run.H} heads`, `${run.T} tokens${written ? `, ${written} written by the model` : ''}`];
    // Value weighting reads a capture that covers one stack of self-attention: not an encoder-decoder
    // run; and whole matrices: not a long run.
    const noValue = s2s ? 'Value weighting does not cover encoder-decoder models yet' : run.longRefusal({ agg: 'mean', weights: 'value' });
    this.weightSel.disabled = noValue !== null;
    this.weightSel.title = noValue ?? WEIGHTS_TITLE;
    // The select says what the views show: attention, whatever the saved choice.
    this.weightSel.value = noValue ? 'attention' : this.ui.weights;
    this.partLabel.hidden = s2s === null;
    // Only a decoder writes after a text; a run the model already continued is continued again from its selection.
    this.continueButton.hidden = run.model.kind !== 'decoder' || s2s !== null;
    this.continueButton.disabled = !run.done;
    if (run.source) parts.push(run.source);
    if (!run.complete) parts.push(`${run.long ? run.thumbsArrived : run.arrived}/${run.L} layers`);
    if (run.done && run.runtime) parts.push(run.runtime);
    if (run.done && typeof run.timings.forwardMs === 'number') parts.push(`forward ${Math.round(run.timings.forwardMs)} ms`);
    // Each fact stays whole and the line wraps between them (a long folder path breaks anywhere);
    // the tooltip has the whole line.
    const line = parts.join(' · ');
    if (this.meta.title !== line) {
      clear(this.meta);
      parts.forEach((p, i) => {
        if (i > 0) this.meta.append(' · ');
        this.meta.append(el('span', { class: i === 0 ? 'meta-part meta-model' : 'meta-part', text: p }));
      });
      this.meta.title = line;
    }
    clear(this.notices);
    const t = run.truncation;
    if (t) this.notices.append(el('li', { text: `Input truncated: showing the first ${t.kept} of ${t.atLeast ? 'more than ' : ''}${t.total} tokens.` }));
    for (const n of [...run.notices, ...extraNotices]) this.notices.append(el('li', { text: n }));
    this.notices.hidden = this.notices.childElementCount === 0;
  }

  setStatus(message: string): void {
    setText(this.status, message);
  }

  /** `previous`: the run still on screen, when there is one (it is marked as the previous run). */
  showError(message: string, previous?: string): void {
    setText(this.error, message);
    this.error.hidden = false;
    setText(this.previousNote, previous ? `Still showing the previous run (${previous}).` : '');
    this.previousNote.hidden = !previous;
  }

  hideError(): void {
    this.error.hidden = true;
    setText(this.error, '');
    this.previousNote.hidden = true;
  }

  paintLegend(theme: Theme): void {
    this.theme = theme;
    const c = this.legend;
    c.width = 128;
    c.height = 1;
    const g = c.getContext('2d');
    if (!g) return;
    const img = g.createImageData(128, 1);
    const u32 = new Uint32Array(img.data.buffer);
    // Positions are even steps of the palette's intensity (the square root of the value).
    if (this.difference) {
      const lut = theme.diff;
      const mid = (lut.length - 1) / 2;
      for (let i = 0; i < 128; i++) {
        const x = (i / 127) * 2 - 1;
        u32[i] = lut[Math.round(mid + Math.sign(x) * x * x * mid)];
      }
    } else {
      const lut = theme.heat;
      for (let i = 0; i < 128; i++) u32[i] = lut[Math.round((i / 127) ** 2 * (lut.length - 1))];
    }
    g.putImageData(img, 0, 0);
    setText(this.legendLow, this.difference ? '−max' : '0');
    setText(this.legendHigh, this.difference ? '+max' : '1');
    this.legend.setAttribute('aria-label', this.difference ? LEGEND_DIFF : LEGEND_HEAT);
  }

  /** The Compare controls, and the legend for what the views show. */
  showCompare(c: CompareControls): void {
    this.pinButton.disabled = !c.canPin;
    this.pinButton.title = c.pinTitle ?? PIN_TITLE;
    this.diffBox.disabled = !c.available;
    this.diffBox.checked = c.on;
    this.clearBaselineButton.hidden = !c.hasBaseline;
    setText(this.compareNote, c.note);
    this.compareNote.title = c.note;
    if (c.on !== this.difference) {
      this.difference = c.on;
      if (this.theme) this.paintLegend(this.theme);
    }
  }
}

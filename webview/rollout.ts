// Attention rollout is computed in the panel, one layer per task in the background, so a rollout
// through layer 12 never blocks a frame. It runs only while something shows rollout.

import type { UiState } from './context';
import type { RunData } from './store';

export interface RolloutEvents {
  /** Rollout now covers the focused layer: repaint what shows it. */
  covered(): void;
  /** One more layer done (progress notes may change). */
  stepped(): void;
}

export class RolloutSteps {
  private timer = 0;

  constructor(
    private readonly shownRun: () => RunData | null,
    private readonly ui: UiState,
    private readonly on: RolloutEvents,
  ) {}

  private wanted(): boolean {
    const ui = this.ui;
    return ui.agg === 'rollout' || (ui.view === 'head' && ui.selected.includes('rollout'));
  }

  /** Computes one rollout layer per task until the focused layer is covered. */
  continue(): void {
    const run = this.shownRun();
    if (!run || this.timer || !this.wanted()) return;
    if (run.rolloutProgress(run.hideSpecial, run.weights) > this.ui.layer) return;
    this.timer = window.setTimeout(() => {
      this.timer = 0;
      if (this.shownRun() !== run) return;
      const did = run.stepRollout(this.ui.layer, run.hideSpecial, run.weights);
      if (!did) return; // waiting for a layer to arrive
      if (run.rolloutProgress(run.hideSpecial, run.weights) > this.ui.layer) this.on.covered();
      else {
        this.on.stepped();
        this.continue();
      }
    }, 0);
  }

  /** A new run: the old one's next step is dropped. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = 0;
  }
}

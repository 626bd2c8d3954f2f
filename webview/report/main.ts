// The standalone HTML report's script (bundled to out/webview/report.js with its styles, inlined
// into the report by src/export/report.ts). It runs the panel's own app and views, fed the run
// stored in the page (the messages the extension would send: run/start, a run/layer per layer,
// run/done) instead of messages from VS Code, and plays the host's part for the messages that
// matter here: a hovered token lights up the words it attends to in the source text beside the
// views, as the editor does, and "Why this weight?" gets an answer saying it needs the extension.
// Nothing here reaches the network: the page's CSP allows no request.

import '../../media/panel.css';
import './report.css';
import { App } from '../app';
import { SourcePane } from './source';
import { parseWebviewMessage } from '../../src/protocol/validate';
import { aggregationFromWire } from '../../src/protocol/attention';
import type { HoverTokenMessage } from '../../src/protocol/webview';
import { REPORT_RUN_ID, reportLayerId, type ReportRunJson } from '../../src/export/reportFormat';

const RUN_ID = 1;
/** Words lit in the source: as many as the panel's list of top words. */
const TOP_WORDS = 8;

/** The panel's bridge to VS Code (webview/vscode.ts) finds this instead: state in memory, posts to `onPost`. */
function installHost(onPost: (message: unknown) => void): void {
  let state: unknown;
  const host = { postMessage: onPost, getState: () => state, setState: (s: unknown) => void (state = s) };
  (globalThis as { acquireVsCodeApi?: () => typeof host }).acquireVsCodeApi = () => host;
}

/** The report follows the browser's light or dark preference, as the panel follows VS Code's theme (body class). */
function followColorScheme(): void {
  const light = matchMedia('(prefers-color-scheme: light)');
  const apply = (): void => {
    document.body.classList.toggle('vscode-light', light.matches);
    document.body.classList.toggle('vscode-dark', !light.matches);
  };
  apply();
  light.addEventListener('change', apply);
}

function fromBase64(text: string): ArrayBuffer {
  const bin = atob(text);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes.buffer;
}

function start(): void {
  const root = document.getElementById('app')!;
  const block = document.getElementById(REPORT_RUN_ID);
  const run = JSON.parse(block?.textContent ?? 'null') as ReportRunJson | null;
  let hover: HoverTokenMessage | null = null;
  let pane: SourcePane | null = null;

  /** The source text for the hovered token: lit words, or nothing while the data is not there. */
  const paintSource = (): void => {
    const shown = app.run;
    if (!pane || !shown || !hover || hover.runId !== shown.runId || hover.tokenIndex === null || hover.tokenIndex >= shown.T) {
      pane?.clear();
      return;
    }
    const focus = { layer: Math.min(hover.layer, shown.L - 1), agg: aggregationFromWire(hover), hideSpecial: hover.hideSpecial };
    const words = shown.attended(hover.tokenIndex, TOP_WORDS, focus);
    if (words) pane.show(hover.tokenIndex, words);
    // Rollout needs every head mean up to the layer: summed a head per task, then painted.
    else if (focus.agg === 'rollout') shown.prepareMeans((step) =>
        setTimeout(() => {
          step();
          paintSource();
        }),
      );
  };

  installHost((raw) => {
    const m = parseWebviewMessage(raw);
    if (m?.type === 'explain/request') {
      // A double click in the matrix still asks; the answer comes later, as the extension's would.
      const error = 'This report holds the attention only. “Why this weight?” captures the model’s queries, keys and values: open the text in VS Code with Attention Lens.';
      setTimeout(() => app.handle({ type: 'explain/data', runId: m.runId, cell: m.cell, error }));
      return;
    }
    if (m?.type !== 'hover/token') return;
    hover = m;
    paintSource();
  });
  followColorScheme();
  const app = new App(root);
  if (!run || run.format !== 'attention-lens-report' || run.version !== 1) {
    app.handle({ type: 'run/error', runId: RUN_ID, message: 'This report holds no run this version can read.' });
    return;
  }
  pane = new SourcePane(document.getElementById('source-text')!, run.sourceText, run.tokens, (index) => app.handle({ type: 'focus/token', runId: RUN_ID, tokenIndex: index }));
  const { model, tokens, sourceText, source, truncation, notices } = run;
  app.handle({ type: 'run/start', runId: RUN_ID, model, tokens, encoding: run.encoding, source, truncation, notices, sourceText });

  // A layer per task, as they would stream in: the grid fills in while the rest decodes.
  let layer = 0;
  const next = (): void => {
    if (layer === model.layers) {
      app.handle({ type: 'run/done', runId: RUN_ID, timings: {}, runtime: run.runtime });
      return;
    }
    const el = document.getElementById(reportLayerId(layer));
    if (!el) {
      app.handle({ type: 'run/error', runId: RUN_ID, message: `This report is missing layer ${layer + 1}.` });
      return;
    }
    app.handle({ type: 'run/layer', runId: RUN_ID, layer, data: fromBase64(el.textContent ?? '') });
    el.remove(); // its text (a third larger than the layer) is no longer needed
    layer++;
    paintSource();
    setTimeout(next);
  };
  next();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
else start();

// Orchestrates a run: editor selection -> engine worker -> panel (streamed layer by layer) and
// back: panel hovers -> editor decorations; edits in the analysed range -> debounced re-run.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { EngineClient } from './engine/client';
import { EngineError, type LoadProgress } from './engine/types';
import { AttentionPanel } from './panel/panel';
import { AttentionDecorations } from './editor/decorations';
import { CompareMarks, type CompareMark } from './editor/compareMarks';
import { RunState } from './editor/runState';
import { RowFetcher } from './run/rowFetcher';
import { LONG_THRESHOLD } from './engine/long';
import { analysable, type Analysable } from './editor/selection';
import { saveRun, savedRun } from './editor/savedRun';
import { readSettings, SECTION } from './settings';
import type { ExplainDataMessage, ExplainOpenMessage, HoverTokenMessage, RowsRequestMessage, WebviewToHost } from './protocol/webview';
import { aggregationFromWire, type AttentionEncoding, type ExplainCell, type Focus } from './protocol/attention';
import { payloadMessages, runDoneMessage, runStartMessage } from './run/messages';
import type { Run } from './run/run';
import { exportFromMenu } from './exportImage';
import { alignTokens, compareRefusal, mostChanged, RowChanges } from './analysis/compare';

/** Where the latest run stands, for the status bar. */
export interface RunStatus {
  state: 'loading' | 'running' | 'done' | 'cancelled' | 'error';
  /** The model setting the run uses (hub id or folder). */
  model: string;
  /** What to show: the progress message, the token count, the error. */
  message: string;
  /** Tokens of the run, once known. */
  tokens?: number;
}

/** A moment in a run's life (performance.now() of the extension host), for tests and the benchmark. */
export interface RunEvent {
  runId: number;
  what: 'requested' | 'done' | 'painted' | 'complete' | 'failed';
  at: number;
}
const RUN_EVENTS_KEPT = 400;
/** Explain messages kept for tests (each holds one head's vectors: a few hundred KB at most). */
const EXPLAINS_KEPT = 20;
/** Compare marks: at most this many tokens, and only those whose attention moved by more than MIN_CHANGE (float noise is not a change). */
const MARKED_TOKENS = 5;
const MIN_CHANGE = 0.01;

/** The compare marks on the editor, for tests: which runs they compare and the tokens marked. */
export interface CompareMarksShown {
  runId: number;
  baselineRunId: number;
  marks: CompareMark[];
}

export class AttentionController implements vscode.Disposable {
  private client: EngineClient | null = null;
  private panel: AttentionPanel | null = null;
  private state: RunState | null = null;
  private nextRunId = 1;
  private liveTimer: NodeJS.Timeout | undefined;
  private readonly decorations = new AttentionDecorations();
  /** The run pinned as the baseline of Compare, and the marks of what changed since it. */
  private baseline: RunState | null = null;
  private readonly compareMarks = new CompareMarks();
  private marksShown: CompareMarksShown | null = null;
  /** The panel's latest hover: a long run's hover waits for its rows and is shown only if still the latest. */
  private lastHover: HoverTokenMessage | null = null;
  private readonly disposables: vscode.Disposable[] = [];
  /** Cancels the run in flight, if any; `attentionLens.running` (a when-clause context) mirrors it. */
  private currentCancel: (() => void) | null = null;
  private readonly statusEmitter = new vscode.EventEmitter<RunStatus>();
  /** Fires as the latest run loads, runs, ends, is cancelled or fails. */
  readonly onDidChangeStatus = this.statusEmitter.event;
  /** Recent runs' moments, oldest first (bounded). */
  readonly events: RunEvent[] = [];
  /** Recent explain/open and explain/data messages posted to the panel, oldest first (bounded), for tests. */
  readonly explains: (ExplainOpenMessage | ExplainDataMessage)[] = [];

  constructor(private readonly context: vscode.ExtensionContext) {
    this.disposables.push(
      this.decorations,
      this.compareMarks,
      this.statusEmitter,
      vscode.workspace.onDidChangeTextDocument((e) => this.onDocumentChanged(e)),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(SECTION)) this.client?.setOptions(readSettings(this.context).engine);
      }),
    );
  }

  /** The latest run, for the hover provider. */
  get run(): RunState | null {
    return this.state;
  }

  /** The panel when one is open, for the exports. */
  get openPanel(): AttentionPanel | null {
    return this.panel;
  }

  // ------------------------------------------------------------------ commands

  async showAttention(): Promise<boolean> {
    const what = this.selection('select some text');
    return what ? this.analyze(what.document, what.range, true, what.textContinues) : false;
  }

  /**
   * The text a command runs on: the active editor's selection (or line), its notices shown; null,
   * with the reason shown, when there is none (`select` says what the user should select).
   */
  private selection(select: string): Exclude<Analysable, { refusal: string }> | null {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showErrorMessage(`Attention Lens: open a file and ${select} first.`);
      return null;
    }
    const what = analysable(editor, readSettings(this.context).maxTokens);
    if ('refusal' in what) {
      void vscode.window.showWarningMessage(`Attention Lens: ${what.refusal}`);
      return null;
    }
    for (const n of what.notices) {
      if (n.passing) void vscode.window.setStatusBarMessage(`Attention Lens: ${n.text}`, 5000);
      else void vscode.window.showInformationMessage(`Attention Lens: ${n.text}`);
    }
    return what;
  }

  async focusToken(args: { runId?: number; tokenIndex?: number } | undefined): Promise<void> {
    if (!this.panel || !this.state || !args || args.runId !== this.state.runId || typeof args.tokenIndex !== 'number') return;
    this.panel.reveal(vscode.ViewColumn.Beside);
    this.panel.post({ type: 'focus/token', runId: args.runId, tokenIndex: args.tokenIndex });
  }

  /**
   * The editor hover's "Why this weight?": moves focus into the panel and asks it to open the
   * explanation of a cell of the latest run (the panel then sends explain/request). `layer`
   * defaults to the panel's layer; `head` to its head, or under a mean the head that gives the
   * weight most. Returns whether the panel was asked.
   */
  explain(args: { runId?: number; query?: number; key?: number; layer?: number; head?: number } | undefined): boolean {
    const state = this.state;
    if (!state || !args || (args.runId !== undefined && args.runId !== state.runId)) return false;
    if (!this.panel) {
      void vscode.window.showInformationMessage('Attention Lens: the panel is closed. Run Show Attention again to explain a weight.');
      return false;
    }
    if (state.long) {
      void vscode.window.showInformationMessage(`Attention Lens: Why this weight? covers runs of up to ${state.long.threshold} tokens; this one has ${state.T}.`);
      return false;
    }
    const inside = (v: unknown, n: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < n;
    const { query, key } = args;
    const layer = args.layer ?? state.view.layer;
    if (!inside(query, state.T) || !inside(key, state.T) || !inside(layer, state.L)) return false;
    const head = args.head ?? (typeof state.view.agg === 'number' ? state.view.agg : state.strongestHead(layer, query, key));
    if (!inside(head, state.H)) return false;
    this.panel.panel.reveal(undefined, false);
    this.postExplain({ type: 'explain/open', runId: state.runId, cell: { layer, head, query, key } });
    return true;
  }

  /** Shows the panel (opening an empty one when there is none) and moves focus into it. */
  focusPanel(): void {
    this.ensurePanel(true).panel.reveal(undefined, false);
  }

  cancel(): void {
    this.currentCancel?.();
  }

  clearDecorations(): void {
    for (const editor of vscode.window.visibleTextEditors) this.decorations.clearAll(editor);
    this.clearCompareMarks();
  }

  /** Pins the latest run (or, from the panel's Pin button, run `runId` when it still is the latest) as the baseline of Compare. */
  pinBaseline(runId?: number): void {
    const state = this.state;
    if (!state) {
      void vscode.window.showWarningMessage('Attention Lens: run Show Attention first; its run becomes the baseline.');
      return;
    }
    if (state.encoder) {
      void vscode.window.showWarningMessage('Attention Lens: Compare covers encoder-only and decoder-only runs; an encoder-decoder run cannot be a baseline yet.');
      return;
    }
    if (state.long) {
      void vscode.window.showWarningMessage(`Attention Lens: Compare needs whole matrices; runs of more than ${state.long.threshold} tokens keep rows on demand instead and cannot be a baseline.`);
      return;
    }
    if (!state.complete) {
      // A baseline's missing layers would never come: a newer run stops the stream of the old one.
      void vscode.window.showWarningMessage('Attention Lens: the run is still arriving; pin it when it is complete.');
      return;
    }
    if (runId !== undefined && runId !== state.runId) {
      // The panel asked for a run a newer one has replaced here: the baseline stays as it was.
      this.panel?.post({ type: 'compare/baseline', baseline: this.baseline?.runId ?? null });
      this.panel?.post({ type: 'status', message: 'That run was replaced by a newer one before it could be pinned.' });
      return;
    }
    this.setBaseline(state);
  }

  clearBaseline(): void {
    this.setBaseline(null);
  }

  /** The baseline's run id and the compare marks on the editor, for tests. */
  get compare(): { baselineRunId: number | null; marks: CompareMarksShown | null } {
    return { baselineRunId: this.baseline?.runId ?? null, marks: this.marksShown };
  }

  /** Adopts a panel VS Code restored after a reload, and brings the last run back into it (and the editor). */
  async revivePanel(webviewPanel: vscode.WebviewPanel): Promise<void> {
    this.attachPanel(new AttentionPanel(webviewPanel, this.context.extensionUri));
    const saved = await savedRun(this.context.workspaceState);
    if (!saved || this.state) return;
    if (saved === 'changed') {
      this.panel?.post({ type: 'status', message: 'The text of the last run has changed since: select it and run Show Attention again.' });
      return;
    }
    await this.analyze(saved.document, saved.range, false);
  }

  /**
   * Show Attention with a given target: an encoder-decoder model reads the selection as its source
   * and is teacher-forced on the target the user types (instead of writing its own); `args.target`
   * skips the input box (scripts, tests).
   */
  async showAttentionWithTarget(args?: { target?: unknown }): Promise<boolean> {
    const what = this.selection('select the source text');
    if (!what) return false;
    const given = typeof args?.target === 'string' && args.target.trim() ? args.target : undefined;
    const target = given ?? await vscode.window.showInputBox({
      title: 'Attention Lens: target text',
      prompt: 'The translation to teacher-force: the decoder reads it token by token, and the panel shows how each target token attends to the selection.',
      placeHolder: 'e.g. the reference translation',
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() ? null : 'Type the target text (the translation of the selection).'),
    });
    if (target === undefined) return false;
    return this.analyze(what.document, what.range, true, what.textContinues, 0, target);
  }

  /**
   * Continue: the model writes `maxNewTokens` tokens after the selection (the latest run's text
   * when the panel asks), streaming them to the status line, then the panel shows the attention of
   * the text and of what it wrote.
   */
  async continueText(from?: RunState): Promise<boolean> {
    const { maxNewTokens } = readSettings(this.context);
    if (from) return this.analyze(from.document, from.range, true, from.request.textContinues === true, maxNewTokens);
    const what = this.selection('select the text to continue');
    if (!what) return false;
    if (what.textContinues) {
      // Writing after the cut would continue text that is not the selection's end.
      void vscode.window.showWarningMessage('Attention Lens: the selection is longer than the model takes; select its last part to continue it.');
      return false;
    }
    return this.analyze(what.document, what.range, true, false, maxNewTokens);
  }

  // ------------------------------------------------------------------ runs

  private async analyze(document: vscode.TextDocument, range: { start: number; end: number }, interactive: boolean, textContinues = false, generate = 0, target?: string): Promise<boolean> {
    const settings = readSettings(this.context);
    if (!settings.model) {
      const pick = await vscode.window.showErrorMessage('Attention Lens: no model is set.', 'Select Model');
      if (pick) void vscode.commands.executeCommand('attentionLens.selectModel');
      return false;
    }
    const panel = this.ensurePanel(interactive);
    const client = this.ensureClient();
    client.setOptions(settings.engine);
    const runId = this.nextRunId++;
    // Whatever older runs have not sent to the panel yet is dropped now: only the newest matters.
    panel.supersede(runId);
    this.logEvent(runId, 'requested');
    const text = document.getText(new vscode.Range(document.positionAt(range.start), document.positionAt(range.end)));
    const version = document.version;
    // The lines actually analysed: a long selection is cut where the model's limit falls.
    const label = (analysed: { start: number; end: number }) => {
      const [first, last] = [document.positionAt(analysed.start).line + 1, document.positionAt(analysed.end).line + 1];
      return `${path.basename(document.uri.path)}:${first === last ? first : `${first}-${last}`}`;
    };
    let state: RunState | null = null;
    let encoding: AttentionEncoding = 'f16';

    const work = async (progress: vscode.Progress<{ message?: string; increment?: number }>, token?: vscode.CancellationToken) => {
      const handle = client.analyze(
        { model: settings.model, text, maxTokens: settings.maxTokens, encoding: 'f16', textContinues, maxNewTokens: settings.maxNewTokens, longAbove: LONG_THRESHOLD, ...(generate ? { generate } : {}), ...(target !== undefined ? { target } : {}) },
        {
          onProgress: (p) => {
            const message = describeProgress(p);
            progress.report({ message });
            panel.post({ type: 'status', message });
            this.statusEmitter.fire({ state: 'loading', model: settings.model, message });
          },
          onStart: (s) => {
            const start = runStartMessage(s, { runId, text, offset: range.start, label });
            encoding = s.encoding;
            // Adopted for the editor's hovers with its first layer (a long run's: its first
            // thumbnails): a run cancelled or failing during its forward pass leaves the previous one in place.
            const run = (state = new RunState(start, document, version, { model: settings.model, text, maxTokens: settings.maxTokens, textContinues, options: settings.engine, ...(generate ? { generate } : {}), ...(target !== undefined ? { target } : {}) }));
            // A long run's rows come from the worker's cache of this request, for the editor and the panel alike.
            if (run.long) run.rows = new RowFetcher(run, (q) => client.rows({ run: handle.requestId, start: q, count: 1 }), (rows) => panel.post({ type: 'run/rows', runId, rows }));
            run.engineRun = handle.requestId;
            // The start arrives before the forward pass (when the model declares its heads): say what runs.
            const running = `Running ${s.model.architecture}: ${start.tokens.length} tokens`;
            progress.report({ message: running });
            panel.post({ type: 'status', message: `${running}…` });
            this.statusEmitter.fire({ state: 'running', model: settings.model, message: running, tokens: start.tokens.length });
            panel.post(start);
            for (const notice of s.notices) void vscode.window.showInformationMessage(`Attention Lens: ${notice}`);
          },
          onPayload: (p) => {
            // A long run has no layers: its thumbnails are what it streams.
            if ((p.kind === 'layer' || state?.long) && state) {
              if (this.state !== state) {
                if (this.state) state.view = { ...state.view, hideSpecial: this.state.view.hideSpecial };
                this.state = state;
                this.paintRange(state);
              }
              // The same bytes for the hovers and the panel: bit-packed (1.75 bytes per cell) when they fit.
              state.add(p);
            }
            for (const m of payloadMessages(runId, p, encoding)) panel.post(m);
          },
        },
      );
      const cancel = () => handle.cancel();
      this.currentCancel = cancel;
      token?.onCancellationRequested(cancel);
      void vscode.commands.executeCommand('setContext', 'attentionLens.running', true);
      try {
        const { timings, start } = await handle.done;
        panel.post(runDoneMessage(runId, { timings, runtime: start.runtime }));
        this.logEvent(runId, 'done');
        saveRun(this.context.workspaceState, document, range, text);
        if (state) void this.markChanges(state);
        panel.post({ type: 'status', message: null });
        this.statusEmitter.fire({ state: 'done', model: settings.model, message: `${start.model.architecture}: ${start.tokens.length} tokens`, tokens: start.tokens.length });
        return true;
      } catch (e) {
        const err = e instanceof EngineError ? e : new EngineError('INTERNAL', String((e as Error)?.message ?? e));
        this.logEvent(runId, 'failed');
        if (err.code === 'SUPERSEDED') return false;
        if (err.code === 'CANCELLED') {
          panel.post({ type: 'status', message: 'Cancelled.' });
          this.statusEmitter.fire({ state: 'cancelled', model: settings.model, message: 'Cancelled.' });
          return false;
        }
        this.statusEmitter.fire({ state: 'error', model: settings.model, message: err.message });
        panel.post({ type: 'run/error', runId, message: err.message });
        void this.showError(err);
        return false;
      } finally {
        // A newer run may have started meanwhile: only the run in flight clears its own state.
        if (this.currentCancel === cancel) {
          this.currentCancel = null;
          void vscode.commands.executeCommand('setContext', 'attentionLens.running', false);
        }
      }
    };

    return interactive
      ? vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Attention Lens', cancellable: true }, work)
      : vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Attention Lens' }, (p) => work(p));
  }

  private async showError(err: EngineError): Promise<void> {
    const actions: string[] = [];
    // Offline or unreachable, the quickest way on is a model already on disk.
    if (['OFFLINE_NOT_CACHED', 'DOWNLOAD_FAILED', 'MODEL_NOT_FOUND'].includes(err.code)) actions.push('Choose a Local Folder');
    if (['MODEL_NOT_FOUND', 'MODEL_CORRUPT', 'ATTENTION_UNSUPPORTED', 'OFFLINE_NOT_CACHED', 'DOWNLOAD_FAILED'].includes(err.code)) actions.push('Select Model');
    if (['RUNTIME_UNAVAILABLE', 'OFFLINE_NOT_CACHED', 'DOWNLOAD_FAILED', 'CACHE_UNUSABLE'].includes(err.code)) actions.push('Open Settings');
    const pick = await vscode.window.showErrorMessage(`Attention Lens: ${err.message}`, ...actions);
    if (pick === 'Choose a Local Folder') {
      const folder = await vscode.commands.executeCommand<string | undefined>('attentionLens.chooseModelFolder');
      if (folder) void vscode.commands.executeCommand('attentionLens.showAttention');
    }
    if (pick === 'Select Model') void vscode.commands.executeCommand('attentionLens.selectModel');
    if (pick === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', SECTION);
  }

  private ensureClient(): EngineClient {
    this.client ??= new EngineClient(path.join(this.context.extensionPath, 'out', 'worker.js'), readSettings(this.context).engine);
    return this.client;
  }

  private ensurePanel(reveal: boolean): AttentionPanel {
    if (this.panel?.visible) {
      if (reveal) this.panel.reveal(vscode.ViewColumn.Beside);
      return this.panel;
    }
    return this.attachPanel(AttentionPanel.create(this.context.extensionUri, vscode.ViewColumn.Beside));
  }

  private attachPanel(panel: AttentionPanel): AttentionPanel {
    this.panel?.dispose();
    this.panel = panel;
    // The baseline's attention lives in the panel that pinned it: a new panel starts without one.
    this.setBaseline(null);
    panel.onMessage((m) => this.onPanelMessage(m));
    panel.onDidDispose(() => {
      if (this.panel !== panel) return;
      this.panel = null;
      // Closing the panel mid-run cancels the run; nothing else is lost.
      this.currentCancel?.();
      this.clearDecorations();
    });
    return panel;
  }

  private logEvent(runId: number, what: RunEvent['what']): void {
    this.events.push({ runId, what, at: performance.now() });
    if (this.events.length > RUN_EVENTS_KEPT) this.events.splice(0, this.events.length - RUN_EVENTS_KEPT);
  }

  /** What the panel has sent and dropped (newest run first), for tests and the benchmark. */
  get outboxStats() {
    return this.panel ? { ...this.panel.outbox.stats, ...this.panel.outbox.backlog } : null;
  }

  private onPanelMessage(msg: WebviewToHost): void {
    if (msg.type === 'run/milestone') return this.logEvent(msg.runId, msg.what);
    if (msg.type === 'export/menu') return void exportFromMenu(msg);
    if (msg.type === 'compare/pin') return this.pinBaseline(msg.runId);
    if (msg.type === 'compare/clear') return this.clearBaseline();
    if (msg.type === 'explain/request') return void this.answerExplain(msg.runId, msg.cell);
    if (msg.type === 'values/request') return void this.answerValues(msg.runId);
    if (msg.type === 'rows/request') return void this.answerRows(msg);
    if (msg.type === 'run/continue') {
      if (this.state?.runId === msg.runId && !this.currentCancel) void this.continueText(this.state);
      return;
    }
    const state = this.state;
    if (!state || !('runId' in msg) || msg.runId !== state.runId) return;
    const editor = vscode.window.visibleTextEditors.find((e) => e.document === state.document);
    // Indices come from the webview: clamp them to this run's shape (the encoder's for its part) before use.
    const agg = aggregationFromWire(msg);
    const part = state.encoder ? msg.part : undefined;
    const shape = part === 'encoder' ? state.encoder! : state;
    const view: Focus = {
      layer: Math.min(msg.layer, shape.L - 1),
      agg: typeof agg === 'number' ? Math.min(agg, shape.H - 1) : agg,
      hideSpecial: msg.type === 'hover/token' ? msg.hideSpecial : state.view.hideSpecial,
      // Until the host has the run's value norms, value-weighted words are null: none shown, never attention under that name.
      ...(msg.weights === 'value' ? { weights: 'value' as const } : {}),
      ...(part ? { part } : {}),
    };
    if (msg.type === 'select/head') {
      state.view = view;
      if (view.agg === 'rollout') state.prepareRollout();
      return;
    }
    if (msg.type !== 'hover/token' || !editor) return;
    if (state.encoder) {
      state.view = view;
      return this.seq2seqHover(state, state.encoder, editor, msg.tokenIndex, msg.side === 'k');
    }
    if (msg.tokenIndex === null || msg.tokenIndex >= state.tokens.length) {
      this.decorations.clearAttended(editor);
      return;
    }
    state.view = view;
    this.lastHover = msg;
    if (state.rows && !state.longRefusal(view) && !state.hasRows(msg.tokenIndex)) {
      // A long run: the token's rows come from the engine first (the panel gets them too); until then the last words stay.
      void state.rows.want(msg.tokenIndex).then((ok) => {
        if (ok && this.lastHover === msg && this.state === state) this.onPanelMessage(msg);
      });
      return;
    }
    const words = state.attendedIn(msg.tokenIndex, readSettings(this.context).topWords, view) ?? [];
    const t = state.tokens[msg.tokenIndex];
    const source = t.special ? null : new vscode.Range(state.document.positionAt(t.start), state.document.positionAt(t.end));
    this.decorations.showAttended(editor, source, words);
  }

  /**
   * An encoder-decoder run's panel hover, on the source in the editor: a source token (encoder
   * part, or a cross column) lit with the source words it attends to (encoder) or alone (cross); a
   * target token (a cross row) lights the source words it attends to. Target tokens have no place
   * in the file: the decoder's own part lights nothing.
   */
  private seq2seqHover(state: RunState, enc: Run, editor: vscode.TextEditor, index: number | null, sourceSide: boolean): void {
    const focus = state.view;
    const k = readSettings(this.context).topWords;
    const range = (t: { start: number; end: number }) => new vscode.Range(state.document.positionAt(t.start), state.document.positionAt(t.end));
    const onSource = focus.part === 'encoder' || (focus.part === 'cross' && sourceSide);
    if (index === null || focus.part === undefined || index >= (onSource ? enc.T : state.T)) return this.decorations.clearAttended(editor);
    if (onSource) {
      const t = enc.tokens[index];
      const words = focus.part === 'encoder' ? enc.attended(index, k, focus) : [];
      if (!words && focus.agg === 'rollout') enc.prepareMeans(setImmediate);
      this.decorations.showAttended(editor, t.special ? null : range(t), words ?? []);
      return;
    }
    this.decorations.showAttended(editor, null, state.crossTokens(index, k, focus) ?? []);
  }

  // ------------------------------------------------------------------ why this weight?

  /** Answers the panel's explain/request: the engine captures the run's queries, keys and values (or answers from its last capture). */
  private async answerExplain(runId: number, cell: ExplainCell): Promise<void> {
    const panel = this.panel;
    const state = this.state;
    if (!panel) return;
    const answer = (a: Pick<ExplainDataMessage, 'explanation' | 'error'>) => this.postExplain({ type: 'explain/data', runId, cell, ...a });
    if (!state || state.runId !== runId) return answer({ error: 'That run was replaced by a newer one.' });
    if (state.long) return answer({ error: `Why this weight? covers runs of up to ${state.long.threshold} tokens; this one has ${state.T}.` });
    if (cell.layer >= state.L || cell.head >= state.H || cell.query >= state.T || cell.key >= state.T) {
      return answer({ error: `That cell lies outside the run (${state.L} layers, ${state.H} heads, ${state.T} tokens).` });
    }
    // Status only while the engine works (a capture, a model load): an answer from the last capture is immediate.
    let status = false;
    try {
      const explanation = await this.ensureClient().explain({ ...state.request, cell }, (p) => {
        status = true;
        panel.post({ type: 'status', message: `${describeProgress(p)}…` });
      });
      answer({ explanation });
    } catch (e) {
      answer({ error: e instanceof Error ? e.message : String(e) });
    } finally {
      // A run in flight owns the status line: its own messages go on.
      if (status && !this.currentCancel) panel.post({ type: 'status', message: null });
    }
  }

  /**
   * Answers the panel's values/request: the engine captures the run's values (or reads its last
   * capture) and computes their norms; the host keeps them for the editor's hovers and sends them on.
   */
  private async answerValues(runId: number): Promise<void> {
    const panel = this.panel;
    const state = this.state;
    if (!panel) return;
    if (!state || state.runId !== runId) return panel.post({ type: 'values/data', runId, error: 'That run was replaced by a newer one.' });
    if (state.long) return panel.post({ type: 'values/data', runId, error: state.longRefusal({ agg: 'mean', weights: 'value' })! });
    let status = false;
    try {
      const data = await this.ensureClient().values(state.request, (p) => {
        status = true;
        panel.post({ type: 'status', message: `${describeProgress(p)}…` });
      });
      state.setValueNorms(data);
      panel.post({ type: 'values/data', runId, data });
    } catch (e) {
      panel.post({ type: 'values/data', runId, error: e instanceof Error ? e.message : String(e) });
    } finally {
      if (status && !this.currentCancel) panel.post({ type: 'status', message: null });
    }
  }

  /** Answers the panel's rows/request (a window of a long run's matrix): the engine computes them over the run's key/value cache. */
  private async answerRows(msg: RowsRequestMessage): Promise<void> {
    const panel = this.panel;
    const state = this.state;
    if (!panel) return;
    const fail = (error: string) => panel.post({ type: 'run/rows', runId: msg.runId, error, start: msg.start, count: msg.count });
    if (!state || state.runId !== msg.runId || state.engineRun === null) return fail('That run was replaced by a newer one.');
    if (!state.long) return fail('Rows on demand are for long runs; this run holds whole layers.');
    try {
      const rows = await this.ensureClient().rows({ run: state.engineRun, start: msg.start, count: msg.count, ...(msg.layers ? { layers: msg.layers } : {}), ...(msg.keyStart !== undefined ? { keyStart: msg.keyStart, keyCount: msg.keyCount } : {}) });
      if (rows.keyStart === 0 && rows.keyCount === state.T) state.addRows(rows);
      panel.post({ type: 'run/rows', runId: msg.runId, rows });
    } catch (e) {
      fail(e instanceof Error ? e.message : String(e));
    }
  }

  private postExplain(m: ExplainOpenMessage | ExplainDataMessage): void {
    this.panel?.post(m);
    this.explains.push(m);
    if (this.explains.length > EXPLAINS_KEPT) this.explains.splice(0, this.explains.length - EXPLAINS_KEPT);
  }

  // ------------------------------------------------------------------ compare

  private setBaseline(run: RunState | null): void {
    if (run === this.baseline) return;
    this.baseline = run;
    this.clearCompareMarks();
    this.panel?.post({ type: 'compare/baseline', baseline: run?.runId ?? null });
    void vscode.commands.executeCommand('setContext', 'attentionLens.hasBaseline', run !== null);
  }

  private clearCompareMarks(): void {
    this.marksShown = null;
    for (const editor of vscode.window.visibleTextEditors) this.compareMarks.clear(editor);
  }

  /**
   * Underlines the tokens of `state` whose attention changed most since the baseline. The scores
   * take every head of both runs (tens of ms a layer at T = 512), so one layer per event-loop turn;
   * a newer run or baseline meanwhile drops the work.
   */
  private async markChanges(state: RunState): Promise<void> {
    const base = this.baseline;
    // An encoder-decoder run has no baseline (pinBaseline refuses one) and is never compared with one.
    if (!base || base === state || !base.complete || !state.complete || state.encoder || state.long || base.long) return;
    const refusal = compareRefusal(base.model, state.model);
    if (refusal) {
      this.clearCompareMarks();
      void vscode.window.setStatusBarMessage(`Attention Lens: no compare marks. ${refusal}`, 8000);
      return;
    }
    const changes = new RowChanges(alignTokens(base, state), base.T, state.T);
    for (let l = 0; l < state.L; l++) {
      changes.add(base.layer(l)!, state.layer(l)!);
      await new Promise((resolve) => setImmediate(resolve));
      if (this.state !== state || this.baseline !== base) return;
    }
    const editor = vscode.window.visibleTextEditors.find((e) => e.document === state.document);
    // Offsets of an edited document no longer point at the run's tokens: the next run marks instead.
    if (!editor || !state.matches(editor.document)) return;
    const scores = changes.scores();
    for (let q = 0; q < state.T; q++) if (state.tokens[q].special) scores[q] = NaN; // no place in the text to mark
    const marks = mostChanged(scores, MARKED_TOKENS, MIN_CHANGE).map((q) => ({ start: state.tokens[q].start, end: state.tokens[q].end, change: scores[q] }));
    this.clearCompareMarks();
    this.compareMarks.show(editor, marks, `${state.L} layers × ${state.H} heads`);
    this.marksShown = { runId: state.runId, baselineRunId: base.runId, marks };
  }

  private paintRange(state: RunState): void {
    const editor = vscode.window.visibleTextEditors.find((e) => e.document === state.document);
    if (editor) this.decorations.showRange(editor, new vscode.Range(state.document.positionAt(state.range.start), state.document.positionAt(state.range.end)));
  }

  // ------------------------------------------------------------------ live updates

  private onDocumentChanged(e: vscode.TextDocumentChangeEvent): void {
    const state = this.state;
    if (!state || e.document !== state.document || !e.contentChanges.length) return;
    let { start, end } = state.range;
    let touched = false;
    // Changes arrive with offsets into the document before the edit, and do not overlap.
    for (const change of [...e.contentChanges].sort((a, b) => b.rangeOffset - a.rangeOffset)) {
      const cStart = change.rangeOffset;
      const cEnd = cStart + change.rangeLength;
      const delta = change.text.length - change.rangeLength;
      if (cStart > end) continue; // after the analysed text
      if (cEnd < start) {
        start += delta; // before it: shift
        end += delta;
      } else {
        touched = true; // inside or touching it: the range grows or shrinks
        start = Math.min(start, cStart);
        end = Math.max(cStart + change.text.length, end + delta);
      }
    }
    state.range = { start, end };
    const settings = readSettings(this.context);
    // A long run's prefill takes seconds to minutes: it reruns on Show Attention, not on every pause in typing.
    if (!touched || !settings.liveUpdate || !this.panel || state.long) return;
    clearTimeout(this.liveTimer);
    this.liveTimer = setTimeout(() => {
      if (this.state !== state || e.document.isClosed) return;
      if (!e.document.getText(new vscode.Range(e.document.positionAt(start), e.document.positionAt(end))).trim()) return;
      void this.analyze(e.document, state.range, false, false, state.request.generate ?? 0, state.request.target);
    }, settings.liveUpdateDelay);
  }

  dispose(): void {
    clearTimeout(this.liveTimer);
    this.panel?.dispose();
    void this.client?.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

function describeProgress(p: LoadProgress): string {
  if (p.phase === 'download' && p.total) {
    const mb = (n: number) => (n / 1048576).toFixed(1);
    return `${p.message}: ${mb(p.loaded ?? 0)} of ${mb(p.total)} MB`;
  }
  return p.message;
}

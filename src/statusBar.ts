// The status bar item: which model the latest run used and where that run stands (loading,
// running, done with its token count, cancelled, failed). Clicking it opens the panel when there
// is something to show there, else Select Model.
//
// It stays hidden until the first run of the window starts. The model setting always has a value
// (the default is a hub id), so "visible when a model is set" would put the item in every window
// of every user who ever installed the extension; once a run has started, the item is the way
// back to the panel and says whether the run is still loading.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { SECTION } from './settings';
import type { RunStatus } from './controller';

export const STATUS_ITEM_ID = 'attentionLens.status';

/** What the item shows, for tests (through the extension's exported API). */
export interface StatusSnapshot {
  visible: boolean;
  text: string;
  tooltip: string;
  command: string | undefined;
  state: RunStatus['state'] | null;
}

/** A folder's last path segment; a hub id as it is. */
export function shortModelName(model: string): string {
  const m = model.trim();
  const isPath = path.isAbsolute(m) || path.win32.isAbsolute(m) || m.startsWith('~') || m.startsWith('.');
  if (!isPath) return m;
  const parts = m.split(/[\\/]+/).filter(Boolean);
  return parts.at(-1) ?? m;
}

const STATE_WORDS: Record<RunStatus['state'], string> = {
  loading: 'loading the model',
  running: 'running',
  done: 'done',
  cancelled: 'cancelled',
  error: 'failed',
};

export class AttentionStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private last: RunStatus | null = null;
  private tooltipText = '';
  private readonly disposables: vscode.Disposable[] = [];

  /** `hasRun`: a run's attention is there to show (the panel is worth opening after an error). */
  constructor(
    onDidChangeStatus: vscode.Event<RunStatus>,
    private readonly hasRun: () => boolean,
  ) {
    this.item = vscode.window.createStatusBarItem(STATUS_ITEM_ID, vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Attention Lens';
    this.disposables.push(
      this.item,
      onDidChangeStatus((e) => this.update(e)),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (this.last && e.affectsConfiguration(`${SECTION}.model`)) this.update(this.last);
      }),
    );
  }

  update(e: RunStatus): void {
    this.last = e;
    const item = this.item;
    const name = shortModelName(e.model);
    const n = e.tokens ?? null;
    const tokens = n === null ? '' : ` · ${n} tokens`;
    switch (e.state) {
      case 'loading':
        item.text = `$(sync~spin) ${name}: loading`;
        break;
      case 'running':
        item.text = `$(sync~spin) ${name}${tokens}`;
        break;
      case 'done':
        item.text = `$(eye) ${name}${tokens}`;
        break;
      case 'cancelled':
        item.text = `$(circle-slash) ${name}: cancelled`;
        break;
      case 'error':
        item.text = `$(error) ${name}: error`;
        break;
    }
    item.backgroundColor = e.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    const openPanel = e.state === 'loading' || e.state === 'running' || e.state === 'done' || this.hasRun();
    item.command = openPanel
      ? { command: 'attentionLens.focusPanel', title: 'Open the Attention Lens panel' }
      : { command: 'attentionLens.selectModel', title: 'Select a model' };

    const lines = [`Attention Lens: ${STATE_WORDS[e.state]}`, `Model: ${e.model}`];
    if (e.message) lines.push(e.message);
    const setting = vscode.workspace.getConfiguration(SECTION).get<string>('model', '');
    if (setting && setting !== e.model) lines.push(`The next run uses ${setting}.`);
    lines.push(openPanel ? 'Click to open the panel.' : 'Click to select a model.');
    this.tooltipText = lines.join('\n');
    const md = new vscode.MarkdownString();
    md.appendMarkdown('**Attention Lens**: ');
    md.appendText(STATE_WORDS[e.state]);
    for (const line of lines.slice(1)) {
      md.appendMarkdown('\n\n');
      md.appendText(line);
    }
    item.tooltip = md;
    item.accessibilityInformation = { label: `Attention Lens: ${name}, ${STATE_WORDS[e.state]}${tokens.replace(' · ', ', ')}`, role: 'button' };
    item.show();
  }

  get snapshot(): StatusSnapshot {
    return {
      visible: this.last !== null,
      text: this.item.text,
      tooltip: this.tooltipText,
      command: this.item.command && typeof this.item.command === 'object' ? this.item.command.command : this.item.command,
      state: this.last?.state ?? null,
    };
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

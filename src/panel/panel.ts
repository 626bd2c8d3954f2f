// The webview panel: strict CSP HTML, validated messages in, typed messages out through the
// outbox (flow control, newest run first), and revival after a window reload.
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { HostToWebview, WebviewToHost } from '../protocol/webview';
import { parseWebviewMessage } from '../protocol/validate';
import { Outbox } from '../run/outbox';

export const PANEL_VIEW_TYPE = 'attentionLens.panel';

export class AttentionPanel implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private readonly messageEmitter = new vscode.EventEmitter<WebviewToHost>();
  private readonly disposeEmitter = new vscode.EventEmitter<void>();
  private readyResolve!: () => void;
  private isReady = false;
  /** Resolves when the webview script has loaded and said `ready`. */
  readonly ready = new Promise<void>((r) => (this.readyResolve = r)).then(() => void (this.isReady = true));
  readonly onMessage = this.messageEmitter.event;
  readonly onDidDispose = this.disposeEmitter.event;
  private disposed = false;
  /** Messages to the panel: sent once it is ready, with few MB of attention unread, newest run first. */
  readonly outbox = new Outbox((m) => void this.panel.webview.postMessage(m));

  static create(extensionUri: vscode.Uri, column: vscode.ViewColumn): AttentionPanel {
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, 'Attention Lens', { viewColumn: column, preserveFocus: true }, AttentionPanel.options(extensionUri));
    return new AttentionPanel(panel, extensionUri);
  }

  static options(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return {
      enableScripts: true,
      retainContextWhenHidden: true,
      localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'out', 'webview')],
    };
  }

  constructor(readonly panel: vscode.WebviewPanel, extensionUri: vscode.Uri) {
    panel.webview.options = AttentionPanel.options(extensionUri);
    panel.webview.html = html(panel.webview, extensionUri);
    this.disposables.push(
      panel.webview.onDidReceiveMessage((raw) => {
        const msg = parseWebviewMessage(raw);
        if (!msg) return; // never act on malformed input from the webview
        if (msg.type === 'ready') this.readyResolve();
        if (msg.type === 'ack') this.outbox.ack(msg.bytes);
        else this.messageEmitter.fire(msg);
      }),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  get visible(): boolean {
    return !this.disposed;
  }

  /** Queues a message for the panel (see Outbox); nothing is sent before the panel said `ready`. */
  post(message: HostToWebview): void {
    if (this.disposed) return;
    if (this.isReady) this.outbox.push(message);
    else void this.ready.then(() => this.disposed || this.outbox.push(message));
  }

  /** A newer run begins: what older runs have not sent yet is dropped. */
  supersede(runId: number): void {
    this.outbox.supersede(runId);
  }

  reveal(column: vscode.ViewColumn): void {
    this.panel.reveal(column, true);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.outbox.clear();
    this.disposeEmitter.fire();
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
    this.messageEmitter.dispose();
    this.disposeEmitter.dispose();
  }
}

function html(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  const nonce = randomBytes(16).toString('base64');
  const asset = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'out', 'webview', name));
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${webview.cspSource}`,
    `img-src ${webview.cspSource} data: blob:`,
    `font-src ${webview.cspSource}`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${asset('panel.css')}">
<title>Attention Lens</title>
</head>
<body>
<div id="app"></div>
<script nonce="${nonce}" src="${asset('main.js')}"></script>
</body>
</html>`;
}

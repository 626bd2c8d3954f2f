// Entry point of the panel's script (bundled to out/webview/main.js, loaded under a strict CSP).
import { App } from './app';

function start(): void {
  const root = document.getElementById('app') ?? document.body.appendChild(document.createElement('div'));
  root.id = 'app';
  const app = new App(root);
  window.addEventListener('message', (e: MessageEvent) => app.handle(e.data));
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
else start();

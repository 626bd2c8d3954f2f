// Entry point of the panel's script (bundled to out/webview/main.js, loaded under a strict CSP).
import { App } from './app';
import { listenInOrder } from './tasks';

function start(): void {
  const root = document.getElementById('app') ?? document.body.appendChild(document.createElement('div'));
  root.id = 'app';
  const app = new App(root);
  listenInOrder((data) => app.handle(data));
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
else start();

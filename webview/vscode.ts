// The webview side of VS Code's API: post messages to the host, persist UI state across reloads.

import type { WebviewToHost } from '../src/protocol/webview';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

let api: VsCodeApi | null = null;

function getApi(): VsCodeApi {
  if (api) return api;
  if (typeof acquireVsCodeApi === 'function') {
    api = acquireVsCodeApi();
  } else {
    // Outside VS Code (a plain browser page): keep state in memory, drop messages.
    let state: unknown;
    api = { postMessage: () => undefined, getState: () => state, setState: (s) => void (state = s) };
  }
  return api;
}

export function post(message: WebviewToHost): void {
  getApi().postMessage(message);
}

export function getState(): unknown {
  return getApi().getState();
}

export function setState(state: unknown): void {
  getApi().setState(state);
}

// What the integration suites share: the running extension's API, polling for a condition, and
// the shared stories260K model as the model setting. Bundled into each suite (not a suite itself).
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';

export const EXTENSION_ID = 'attention-lens.attention-lens';

/** The shared real model, beside the repository (suites run from out/test/integration). */
export const STORIES = path.resolve(__dirname, '../../..', '../shared/models/stories260K');

/** The running extension's exported API (what each suite reads of it is its own `T`). */
export async function extensionApi<T>(): Promise<T> {
  const ext = vscode.extensions.getExtension<T>(EXTENSION_ID);
  assert.ok(ext, 'extension loaded');
  return ext.activate();
}

type Poll<T> = () => T | undefined | null | false | Promise<T | undefined | null | false>;

/** A waitFor(what, f, ms?) that polls `f` every 100 ms until it gives a truthy value, for at most `ms` (default `defaultMs`). */
export function waiter(defaultMs: number) {
  return async function waitFor<T>(what: string, f: Poll<T>, ms = defaultMs): Promise<T> {
    const until = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
}

/** Sets stories260K as the model, offline (user settings). */
export async function useStories(): Promise<void> {
  const config = vscode.workspace.getConfiguration('attentionLens');
  await config.update('model', STORIES, vscode.ConfigurationTarget.Global);
  await config.update('offline', true, vscode.ConfigurationTarget.Global);
}

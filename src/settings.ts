// Reads `attentionLens.*` settings into engine options. Extension layer (imports vscode).
import * as path from 'node:path';
import * as vscode from 'vscode';
import { DTYPES, type DtypeChoice, type EngineOptions, type RuntimeChoice } from './engine/types';

export const SECTION = 'attentionLens';

export interface Settings {
  model: string;
  engine: EngineOptions;
  maxTokens: number;
  liveUpdate: boolean;
  liveUpdateDelay: number;
  topWords: number;
  /** How many tokens the model writes at most: Continue, and an encoder-decoder model's target. */
  maxNewTokens: number;
}

export function readSettings(context: vscode.ExtensionContext): Settings {
  const c = vscode.workspace.getConfiguration(SECTION);
  // In an untrusted workspace, only the user's own settings may point at a model folder.
  const model = vscode.workspace.isTrusted ? c.get<string>('model', '') : (c.inspect<string>('model')?.globalValue ?? c.inspect<string>('model')?.defaultValue ?? '');
  const cacheSetting = vscode.workspace.isTrusted ? c.get<string>('cacheDirectory', '') : c.inspect<string>('cacheDirectory')?.globalValue ?? '';
  return {
    model: model.trim(),
    engine: {
      cacheDir: cacheSetting.trim() || path.join(context.globalStorageUri.fsPath, 'cache'),
      offline: c.get<boolean>('offline', false),
      runtime: c.get<RuntimeChoice>('runtime', 'auto'),
      dtype: dtype(c.get<unknown>('dtype')),
      // The panel and the hovers show float16 anyway: let the graph produce it.
      attentionPrecision: 'float16',
      downloadConnectTimeoutMs: seconds(c.get<number>('download.connectTimeout', 20), 20) * 1000,
      downloadIdleTimeoutMs: seconds(c.get<number>('download.idleTimeout', 30), 30) * 1000,
    },
    maxTokens: c.get<number>('maxTokens', 8192),
    liveUpdate: c.get<boolean>('liveUpdate', true),
    liveUpdateDelay: c.get<number>('liveUpdateDelay', 600),
    topWords: c.get<number>('topWords', 5),
    maxNewTokens: Math.round(Math.min(256, Math.max(1, Number(c.get<number>('maxNewTokens', 40)) || 40))),
  };
}

/** The dtype setting, fp32 for anything settings.json may hold that is not one. */
function dtype(value: unknown): DtypeChoice {
  return DTYPES.find((d) => d === value) ?? 'fp32';
}

/** A timeout setting in seconds, kept within the range package.json declares (settings.json may hold anything). */
function seconds(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? Math.min(600, Math.max(1, value)) : fallback;
}

// "Attention Lens: Select Model": a curated list of small transformers.js-ready models, a local
// folder picker, or any hub id.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { DtypeChoice } from './engine/types';
import { SECTION } from './settings';

export interface CuratedModel {
  id: string;
  kind: 'encoder' | 'decoder';
  shape: string;
  /**
   * Download size of each dtype the repository ships, external data included. Approximate: read off
   * the hub's file listings (as search-engine snapshots had them; files get re-exported), or, where
   * marked "est.", estimated from the parameter count (4 bytes/param fp32, 2 fp16, ~1 q8).
   */
  sizes: Partial<Record<DtypeChoice, string>>;
  note: string;
}

export const CURATED_MODELS: CuratedModel[] = [
  { id: 'Xenova/distilgpt2', kind: 'decoder', shape: '6 layers x 12 heads', sizes: { fp32: '~330 MB', fp16: '~165 MB', q8: '~85 MB' }, note: 'Default: byte-level BPE keeps every character of code and prose.' },
  { id: 'Xenova/gpt2', kind: 'decoder', shape: '12 layers x 12 heads', sizes: { fp32: '~500 MB', fp16: '~250 MB', q8: '~128 MB' }, note: 'The classic causal decoder.' },
  { id: 'Xenova/distilbert-base-uncased', kind: 'encoder', shape: '6 layers x 12 heads', sizes: { fp32: '~265 MB est.', q8: '~67 MB est.' }, note: 'Bidirectional encoder, lowercased WordPiece.' },
  { id: 'Xenova/bert-base-uncased', kind: 'encoder', shape: '12 layers x 12 heads', sizes: { fp32: '~440 MB est.', q8: '~110 MB est.' }, note: 'The model bertviz made famous.' },
  { id: 'Xenova/all-MiniLM-L6-v2', kind: 'encoder', shape: '6 layers x 12 heads', sizes: { fp32: '~90 MB est.', q8: '~23 MB est.' }, note: 'Smallest download; sentence-embedding encoder.' },
  {
    id: 'HuggingFaceTB/SmolLM2-135M-Instruct', kind: 'decoder', shape: '30 layers x 9 heads (3 key/value)',
    sizes: { fp32: '~654 MB', fp16: '~327 MB', q4: '~200 MB', q4f16: '~134 MB' },
    note: 'A small current Llama-architecture chat model.',
  },
  {
    id: 'onnx-community/Qwen2.5-0.5B-Instruct', kind: 'decoder', shape: '24 layers x 14 heads (2 key/value)',
    sizes: { fp32: '~2.0 GB', fp16: '~1.0 GB', q8: '~512 MB', int8: '~512 MB', uint8: '~512 MB', q4: '~786 MB', q4f16: '~483 MB', bnb4: '~764 MB' },
    note: 'Qwen2.5 chat model; byte-level BPE.',
  },
  {
    id: 'onnx-community/Qwen2.5-Coder-0.5B-Instruct', kind: 'decoder', shape: '24 layers x 14 heads (2 key/value)',
    sizes: { fp32: '~2.5 GB', fp16: '~1.3 GB', q8: '~639 MB', int8: '~639 MB', uint8: '~639 MB', q4: '~862 MB', q4f16: '~555 MB', bnb4: '~832 MB' },
    note: 'Qwen2.5 trained for code.',
  },
  {
    id: 'onnx-community/Qwen3-0.6B-ONNX', kind: 'decoder', shape: '28 layers x 16 heads (8 key/value)',
    sizes: { fp32: '~3 GB est.', fp16: '~1.5 GB est.', q8: '~750 MB est.' },
    note: 'Qwen3; which dtypes this export ships was not checked.',
  },
  {
    id: 'onnx-community/Llama-3.2-1B-Instruct', kind: 'decoder', shape: '16 layers x 32 heads (8 key/value)',
    sizes: { fp32: '~4.9 GB', fp16: '~2.5 GB', q8: '~1.2 GB', int8: '~1.2 GB', uint8: '~1.2 GB', q4: '~1.7 GB', q4f16: '~1.1 GB', bnb4: '~1.6 GB' },
    note: 'Llama 3.2; the largest here (Llama 3.2 community license).',
  },
];

/** The quick pick's size for the dtype set, or what the model has instead. */
function sizeLabel(m: CuratedModel, dtype: DtypeChoice): string {
  const size = m.sizes[dtype];
  return size ? `${size} (${dtype})` : `no ${dtype} listed; has ${Object.keys(m.sizes).join(', ')}`;
}

type Item = vscode.QuickPickItem & { action: 'model' | 'folder' | 'hub' | 'recent'; id?: string };

/** globalState key of the local model folders used before, most recent first. */
export const RECENT_FOLDERS_KEY = 'attentionLens.recentModelFolders';
const RECENT_FOLDERS_KEPT = 5;

/** Whether `folder` looks like a transformers.js model folder (what the engine needs first). */
function isModelFolder(folder: string): boolean {
  return fs.existsSync(path.join(folder, 'config.json')) && fs.existsSync(path.join(folder, 'tokenizer.json'));
}

/** The local model folders used before that still exist, most recent first. */
export function recentFolders(state: vscode.Memento | undefined): string[] {
  const saved = state?.get<unknown>(RECENT_FOLDERS_KEY);
  if (!Array.isArray(saved)) return [];
  return saved.filter((f): f is string => typeof f === 'string' && path.isAbsolute(f) && isModelFolder(f)).slice(0, RECENT_FOLDERS_KEPT);
}

/** Puts `folder` first in the recent folders (ignored unless it is an absolute path). */
export async function rememberFolder(state: vscode.Memento | undefined, folder: string): Promise<void> {
  if (!state || !path.isAbsolute(folder)) return;
  const saved = state.get<unknown>(RECENT_FOLDERS_KEY);
  const old = Array.isArray(saved) ? saved.filter((f): f is string => typeof f === 'string') : [];
  const same = (f: string) => path.resolve(f) === path.resolve(folder);
  await state.update(RECENT_FOLDERS_KEY, [folder, ...old.filter((f) => !same(f))].slice(0, RECENT_FOLDERS_KEPT));
}

/** Sets the model setting (user settings: a workspace must not choose the folder, see package.json). */
async function useModel(model: string, state: vscode.Memento | undefined): Promise<void> {
  await vscode.workspace.getConfiguration(SECTION).update('model', model, vscode.ConfigurationTarget.Global);
  if (path.isAbsolute(model)) await rememberFolder(state, model);
  void vscode.window.setStatusBarMessage(`Attention Lens: model set to ${model}`, 4000);
}

/**
 * "Attention Lens: Choose Local Model Folder…": the folder picker straight away (also what an
 * offline first run can offer). Sets the model and returns the folder; undefined when cancelled
 * or when the folder is not a model folder (an error says so).
 */
export async function chooseModelFolder(state?: vscode.Memento): Promise<string | undefined> {
  const folder = await pickFolder(state);
  if (folder) await useModel(folder, state);
  return folder;
}

async function pickFolder(state: vscode.Memento | undefined): Promise<string | undefined> {
  const recent = recentFolders(state)[0];
  const uris = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: false,
    openLabel: 'Use this model folder',
    title: 'Attention Lens: a model folder (config.json, tokenizer.json, onnx/model.onnx)',
    defaultUri: recent ? vscode.Uri.file(path.dirname(recent)) : undefined,
  });
  if (!uris?.length) return undefined;
  const folder = uris[0].fsPath;
  if (!isModelFolder(folder)) {
    void vscode.window.showErrorMessage(`Attention Lens: ${folder} is not a transformers.js model folder (config.json and tokenizer.json are needed).`);
    return undefined;
  }
  return folder;
}

export async function selectModel(state?: vscode.Memento): Promise<string | undefined> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const current = config.get<string>('model', '');
  const dtype = config.get<DtypeChoice>('dtype', 'fp32');
  const recent = recentFolders(state);
  const items: Item[] = [
    ...(recent.length
      ? [
          { label: 'Recent local folders', kind: vscode.QuickPickItemKind.Separator, action: 'model' } as Item,
          ...recent.map<Item>((f) => ({
            label: `${f === current ? '$(check)' : '$(folder)'} ${path.basename(f)}`,
            description: f,
            action: 'recent',
            id: f,
          })),
        ]
      : []),
    { label: 'Curated models', kind: vscode.QuickPickItemKind.Separator, action: 'model' },
    ...CURATED_MODELS.map<Item>((m) => ({
      label: `${m.id === current ? '$(check) ' : ''}${m.id}`,
      description: `${m.kind} · ${m.shape} · ${sizeLabel(m, dtype)}`,
      detail: `${m.note} Downloads: ${Object.entries(m.sizes).map(([d, size]) => `${d} ${size}`).join(', ')}.`,
      action: 'model',
      id: m.id,
    })),
    { label: 'Other', kind: vscode.QuickPickItemKind.Separator, action: 'model' },
    { label: '$(folder-opened) Local folder…', detail: 'A folder with config.json, tokenizer.json and onnx/model.onnx', action: 'folder' },
    { label: '$(edit) Hugging Face hub id…', detail: 'Any transformers.js-ready model, e.g. onnx-community/… or Xenova/…', action: 'hub' },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Attention Lens: Select Model', placeHolder: `Current: ${current || 'none'}`, matchOnDescription: true, matchOnDetail: true });
  if (!pick) return undefined;

  let model: string | undefined;
  if (pick.action === 'model' || pick.action === 'recent') model = pick.id;
  else if (pick.action === 'folder') model = await pickFolder(state);
  else {
    model = await vscode.window.showInputBox({
      title: 'Hugging Face hub id',
      prompt: 'owner/name of a model with ONNX weights in its onnx/ folder',
      value: current.includes('/') && !path.isAbsolute(current) ? current : '',
      validateInput: (v) => (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(v.trim()) ? null : 'Expected owner/name, for example Xenova/distilgpt2'),
    });
    model = model?.trim();
  }
  if (!model) return undefined;
  await useModel(model, state);
  return model;
}

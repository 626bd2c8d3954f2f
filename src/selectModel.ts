// "Attention Lens: Select Model": a curated list of small transformers.js-ready models, a local
// folder picker, or any hub id.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { SECTION } from './settings';

export interface CuratedModel {
  id: string;
  kind: 'encoder' | 'decoder';
  shape: string;
  /** Download sizes estimated from the parameter count (4 bytes/param fp32, ~1 byte/param q8). */
  fp32: string;
  q8: string;
  note: string;
}

export const CURATED_MODELS: CuratedModel[] = [
  { id: 'Xenova/distilgpt2', kind: 'decoder', shape: '6 layers x 12 heads', fp32: '~330 MB', q8: '~85 MB', note: 'Default: byte-level BPE keeps every character of code and prose.' },
  { id: 'Xenova/gpt2', kind: 'decoder', shape: '12 layers x 12 heads', fp32: '~500 MB', q8: '~125 MB', note: 'The classic causal decoder.' },
  { id: 'Xenova/distilbert-base-uncased', kind: 'encoder', shape: '6 layers x 12 heads', fp32: '~265 MB', q8: '~67 MB', note: 'Bidirectional encoder, lowercased WordPiece.' },
  { id: 'Xenova/bert-base-uncased', kind: 'encoder', shape: '12 layers x 12 heads', fp32: '~440 MB', q8: '~110 MB', note: 'The model bertviz made famous.' },
  { id: 'Xenova/all-MiniLM-L6-v2', kind: 'encoder', shape: '6 layers x 12 heads', fp32: '~90 MB', q8: '~23 MB', note: 'Smallest download; sentence-embedding encoder.' },
];

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
  const dtype = config.get<string>('dtype', 'fp32');
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
      description: `${m.kind} · ${m.shape} · ${dtype === 'q8' ? m.q8 : m.fp32} (${dtype})`,
      detail: m.note,
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

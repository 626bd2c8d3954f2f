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

type Item = vscode.QuickPickItem & { action: 'model' | 'folder' | 'hub'; id?: string };

export async function selectModel(): Promise<string | undefined> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const current = config.get<string>('model', '');
  const dtype = config.get<string>('dtype', 'fp32');
  const items: Item[] = [
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
  if (pick.action === 'model') model = pick.id;
  else if (pick.action === 'folder') {
    const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Use this model folder' });
    if (!uris?.length) return undefined;
    const folder = uris[0].fsPath;
    if (!fs.existsSync(path.join(folder, 'config.json')) || !fs.existsSync(path.join(folder, 'tokenizer.json'))) {
      void vscode.window.showErrorMessage(`Attention Lens: ${folder} is not a transformers.js model folder (config.json and tokenizer.json are needed).`);
      return undefined;
    }
    model = folder;
  } else {
    model = await vscode.window.showInputBox({
      title: 'Hugging Face hub id',
      prompt: 'owner/name of a model with ONNX weights in its onnx/ folder',
      value: current.includes('/') && !path.isAbsolute(current) ? current : '',
      validateInput: (v) => (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(v.trim()) ? null : 'Expected owner/name, for example Xenova/distilgpt2'),
    });
    model = model?.trim();
  }
  if (!model) return undefined;
  await config.update('model', model, vscode.ConfigurationTarget.Global);
  void vscode.window.setStatusBarMessage(`Attention Lens: model set to ${model}`, 4000);
  return model;
}

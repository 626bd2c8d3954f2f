// Lazy access to transformers.js, bound to the ONNX Runtime we chose.
// transformers.js' Node build requires onnxruntime-node when it is first evaluated unless an ORT
// instance is registered under Symbol.for('onnxruntime'); registering ours first means a native
// binary that cannot load does not take the tokenizer down with it.
import type { Ort } from './runtime';

type TransformersModule = typeof import('@huggingface/transformers');
let loading: Promise<TransformersModule> | null = null;

export function transformersjs(ort: Ort): Promise<TransformersModule> {
  const key = Symbol.for('onnxruntime');
  const g = globalThis as Record<symbol, unknown>;
  if (!(key in g)) g[key] = ort;
  loading ??= import('@huggingface/transformers').then((m) => {
    // We hand transformers.js local folders only (downloads are ours): it must never go online.
    m.env.allowRemoteModels = false;
    m.env.allowLocalModels = true;
    m.env.localModelPath = '';
    m.env.useFSCache = false;
    m.env.useBrowserCache = false;
    return m;
  });
  return loading;
}

export type PreTrainedTokenizer = Awaited<ReturnType<TransformersModule['AutoTokenizer']['from_pretrained']>>;

export async function loadTokenizer(ort: Ort, folder: string): Promise<PreTrainedTokenizer> {
  const { AutoTokenizer } = await transformersjs(ort);
  return AutoTokenizer.from_pretrained(folder, { local_files_only: true });
}

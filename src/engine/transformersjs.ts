// Lazy access to transformers.js, bound to the ONNX Runtime we chose.
// transformers.js uses the ORT registered under Symbol.for('onnxruntime') (ours), but its Node build
// still requires onnxruntime-node when it is first evaluated; withOrtFallback keeps a missing package
// or a binary that cannot load from taking the tokenizer down with it.
import Module from 'node:module';
import type { Ort } from './runtime';

/**
 * transformers.js' Node build requires onnxruntime-node while it is evaluated, even when an ORT is
 * registered (which it then uses). Where that package or its binary is missing or cannot load (the
 * universal VSIX, a platform without a binary), hand it the registered runtime while it loads.
 */
function withOrtFallback<T>(ort: Ort, load: () => Promise<T>): Promise<T> {
  const M = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const original = M._load;
  M._load = function (this: unknown, request: string, ...rest: unknown[]) {
    try {
      return original.call(this, request, ...rest);
    } catch (e) {
      if (request === 'onnxruntime-node') return ort;
      throw e;
    }
  };
  return load().finally(() => {
    M._load = original;
  });
}

type TransformersModule = typeof import('@huggingface/transformers');
let loading: Promise<TransformersModule> | null = null;

export function transformersjs(ort: Ort): Promise<TransformersModule> {
  const key = Symbol.for('onnxruntime');
  const g = globalThis as Record<symbol, unknown>;
  if (!(key in g)) g[key] = ort;
  loading ??= withOrtFallback(ort, () => import('@huggingface/transformers')).then((m) => {
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

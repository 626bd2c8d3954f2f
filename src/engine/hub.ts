// Resolves a model reference (local folder or Hugging Face hub id) to a local folder in the
// transformers.js layout, downloading hub files into the cache on first use.
//
// Why not transformers.js' own downloader: it writes into its cache as bytes arrive (a cut
// download can leave a corrupt file) and cannot be cancelled; we need atomic writes, byte
// progress, AbortSignal and an offline guarantee. Tokenizer and config are still read by
// transformers.js, from the folder this module returns.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { scanModel } from './onnx/modelScan';
import { WireError } from './onnx/wire';
import { DTYPES, EngineError, type DtypeChoice, type LoadProgress } from './types';

export const DEFAULT_REMOTE_HOST = 'https://huggingface.co/';
export const DEFAULT_REMOTE_PATH_TEMPLATE = '{model}/resolve/{revision}/';
/** The longest wait for a server to connect and send response headers (fetch's own limit is 300 s). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;
/** The longest pause mid-download without a byte. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export interface ResolveOptions {
  cacheDir: string;
  dtype: DtypeChoice;
  offline: boolean;
  remoteHost?: string;
  remotePathTemplate?: string;
  revision?: string;
  /** See DEFAULT_CONNECT_TIMEOUT_MS and DEFAULT_IDLE_TIMEOUT_MS. */
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
}

export interface ResolvedModel {
  /** Folder holding config.json, tokenizer files and the ONNX file. */
  folder: string;
  /** ONNX file relative to `folder`, e.g. "onnx/model.onnx". */
  onnxFile: string;
  fromHub: boolean;
}

/** The file-name suffix of each dtype, as transformers.js names its exports (its DEFAULT_DTYPE_SUFFIX_MAPPING). */
const DTYPE_SUFFIX: Record<DtypeChoice, string> = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
};

/** ONNX files to try, in order, for a dtype (single-file exports first, then merged decoders). */
export function onnxCandidates(dtype: DtypeChoice): string[] {
  return ['model', 'decoder_model', 'decoder_model_merged'].map((base) => `onnx/${base}${DTYPE_SUFFIX[dtype]}.onnx`);
}

/** The dtypes a folder has an ONNX file for, with the file each would load. */
function dtypesIn(folder: string): { dtype: DtypeChoice; file: string }[] {
  return DTYPES.flatMap((dtype) => {
    const file = onnxCandidates(dtype).find((f) => fs.existsSync(path.join(folder, f)));
    return file ? [{ dtype, file }] : [];
  });
}

/** "a", "a or b", "a, b or c". */
const orList = (items: string[]) => (items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`);

/** What a folder without the dtype asked for does have, as advice. */
function otherDtypesAdvice(folder: string): string {
  const present = dtypesIn(folder);
  if (present.length) {
    return ` It has ${present.map((p) => `${p.dtype} (${p.file})`).join(', ')}. Try dtype ${orList(present.map((p) => p.dtype))}.`;
  }
  const onnxFiles = ['', 'onnx'].flatMap((sub) => {
    try {
      return fs.readdirSync(path.join(folder, sub)).filter((f) => f.endsWith('.onnx')).map((f) => path.posix.join(sub, f));
    } catch {
      return [];
    }
  });
  return onnxFiles.length
    ? ` Its ONNX files (${onnxFiles.join(', ')}) are not named as transformers.js names them (onnx/model.onnx, onnx/model_q4.onnx, …).`
    : '';
}

/** An encoder-decoder's encoder file for a dtype (transformers.js' name). */
export function encoderFile(dtype: DtypeChoice): string {
  return `onnx/encoder_model${DTYPE_SUFFIX[dtype]}.onnx`;
}

/**
 * Makes sure `file` (another ONNX file of a resolved model: an encoder-decoder's encoder) is in the
 * model folder, downloading it into the cache for hub models. Throws MODEL_NOT_FOUND naming it when
 * a local folder or the hub lacks it, OFFLINE_NOT_CACHED offline.
 */
export async function resolveCompanion(ref: string, resolved: ResolvedModel, file: string, opts: ResolveOptions): Promise<void> {
  if (fs.existsSync(path.join(resolved.folder, file))) return;
  if (!resolved.fromHub) {
    throw new EngineError('MODEL_NOT_FOUND', `${resolved.folder} has the decoder ${resolved.onnxFile} but not the encoder ${file}.`);
  }
  if (opts.offline) {
    throw new EngineError('OFFLINE_NOT_CACHED', `Offline mode is on and ${ref}/${file} is not in the cache (${resolved.folder}). Turn offline mode off once to download it.`);
  }
  if (!(await downloadModel(ref.trim(), file, resolved.folder, opts))) {
    throw new EngineError('MODEL_NOT_FOUND', `${ref} has the decoder ${resolved.onnxFile} but no ${file} on the hub (${fileUrl(ref.trim(), file, opts)}).`);
  }
}

const REQUIRED_JSON = ['config.json', 'tokenizer.json'];
const OPTIONAL_JSON = ['tokenizer_config.json'];

/** A hub id looks like "owner/name" or "name" and is not an existing path. */
export function isLocalReference(ref: string): boolean {
  return path.isAbsolute(ref) || ref.startsWith('.') || ref.startsWith('~') || fs.existsSync(ref);
}

export async function resolveModel(ref: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const trimmed = ref.trim();
  if (!trimmed) throw new EngineError('MODEL_NOT_FOUND', 'No model is set. Choose one with "Attention Lens: Select Model".');
  return isLocalReference(trimmed) ? resolveLocal(trimmed, opts.dtype) : resolveHub(trimmed, opts);
}

function resolveLocal(ref: string, dtype: DtypeChoice): ResolvedModel {
  const folder = path.resolve(ref.startsWith('~') ? path.join(process.env.HOME ?? '', ref.slice(1)) : ref);
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) {
    throw new EngineError('MODEL_NOT_FOUND', `Model folder not found: ${folder}`);
  }
  for (const f of REQUIRED_JSON) {
    if (!fs.existsSync(path.join(folder, f))) {
      throw new EngineError('MODEL_NOT_FOUND', `${folder} is not a transformers.js model folder: ${f} is missing.`);
    }
  }
  const onnxFile = onnxCandidates(dtype).find((f) => fs.existsSync(path.join(folder, f)));
  const encoder = encoderFile(dtype);
  if (!onnxFile && fs.existsSync(path.join(folder, encoder))) {
    const decoders = onnxCandidates(dtype).slice(1).reverse();
    throw new EngineError('MODEL_NOT_FOUND', `${folder} has the encoder ${encoder} but no decoder: ${decoders.join(' or ')} is missing.${otherDtypesAdvice(folder)}`);
  }
  if (!onnxFile) {
    throw new EngineError('MODEL_NOT_FOUND', `No ${dtype} ONNX file in ${folder}: expected one of ${onnxCandidates(dtype).join(', ')}.${otherDtypesAdvice(folder)}`);
  }
  return { folder, onnxFile, fromHub: false };
}

/** Hub ids become cache folders; reject anything that could escape the cache. */
function safeIdPath(id: string): string {
  if (!/^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/.test(id) || id.split('/').some((p) => p === '..' || p === '.')) {
    throw new EngineError('MODEL_NOT_FOUND', `"${id}" is neither a local folder nor a hub model id (owner/name).`);
  }
  return id;
}

async function resolveHub(id: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const folder = path.join(opts.cacheDir, 'models', safeIdPath(id));
  const cached = (f: string) => fs.existsSync(path.join(folder, f));
  const candidates = onnxCandidates(opts.dtype);

  if (opts.offline) {
    const missing = REQUIRED_JSON.filter((f) => !cached(f));
    const onnxFile = candidates.find(cached);
    if (missing.length || !onnxFile) {
      const cachedDtypes = missing.length ? [] : dtypesIn(folder).map((p) => p.dtype);
      throw new EngineError(
        'OFFLINE_NOT_CACHED',
        `Offline mode is on and ${id} (${opts.dtype}) is not in the cache (${folder}). Turn offline mode off once to download it, or choose a local folder.` +
          (cachedDtypes.length ? ` The cache has it as ${orList(cachedDtypes)}.` : ''),
      );
    }
    return { folder, onnxFile, fromHub: true };
  }

  for (const f of REQUIRED_JSON) if (!cached(f)) await downloadFile(id, f, folder, opts, true);
  for (const f of OPTIONAL_JSON) if (!cached(f)) await downloadFile(id, f, folder, opts, false);
  // Generation settings (decoder start and end tokens) come with the model's first download only: many
  // models have none, and loading a cached one must not need the network to learn that again.
  if (!candidates.some(cached) && !cached('generation_config.json')) await downloadFile(id, 'generation_config.json', folder, opts, false);
  let onnxFile = candidates.find(cached);
  for (const f of candidates) {
    if (onnxFile) break;
    if (await downloadModel(id, f, folder, opts)) onnxFile = f;
  }
  if (!onnxFile) {
    throw new EngineError(
      'MODEL_NOT_FOUND',
      `${id} has no ${opts.dtype} ONNX file (${candidates.join(', ')}). Try another dtype: transformers.js exports ship some of ` +
        `${DTYPES.join(', ')}, and the model's onnx/ folder on the hub shows which. Without an onnx/ folder it is not a ` +
        'transformers.js model; look for an Xenova/ or onnx-community/ export of it.',
    );
  }
  return { folder, onnxFile, fromHub: true };
}

/**
 * Downloads an ONNX file and the external data files it references, by the names the model records
 * (transformers.js exports use `model.onnx_data`, `model.onnx_data_1`, …; onnxruntime-genai's builder
 * `model.onnx.data`). The model file is put in place last, so a cached model always has its data.
 * Returns false when the hub has no such model file.
 */
async function downloadModel(id: string, file: string, folder: string, opts: ResolveOptions): Promise<boolean> {
  const staged = `${file}.download`;
  if (!(await downloadFile(id, file, folder, opts, false, staged))) return false;
  const stagedPath = path.join(folder, staged);
  try {
    for (const location of externalDataLocations(stagedPath, `${id}/${file}`)) {
      const dataFile = path.posix.join(path.posix.dirname(file), location);
      if (fs.existsSync(path.join(folder, dataFile)) || (await downloadFile(id, dataFile, folder, opts, false))) continue;
      throw new EngineError(
        'MODEL_NOT_FOUND',
        `${id}/${file} keeps its weights in ${location}, but the hub has no ${dataFile} (${fileUrl(id, dataFile, opts)}). The export is incomplete; try another dtype.`,
      );
    }
    fs.renameSync(stagedPath, path.join(folder, file));
    return true;
  } catch (e) {
    fs.rmSync(stagedPath, { force: true });
    throw e;
  }
}

/** The external data files a downloaded model references, relative to it. */
function externalDataLocations(modelPath: string, label: string): string[] {
  let locations: string[];
  try {
    locations = scanModel(fs.readFileSync(modelPath)).externalDataLocations;
  } catch (e) {
    if (e instanceof WireError) throw new EngineError('MODEL_CORRUPT', `${label} is not a readable ONNX model (${e.message}).`);
    throw e;
  }
  for (const loc of locations) {
    if (path.isAbsolute(loc) || loc.split(/[\\/]/).includes('..')) {
      throw new EngineError('MODEL_CORRUPT', `${label}: external data location "${loc}" points outside the model folder.`);
    }
  }
  return locations;
}

export function fileUrl(id: string, file: string, opts: Pick<ResolveOptions, 'remoteHost' | 'remotePathTemplate' | 'revision'>): string {
  const host = (opts.remoteHost ?? DEFAULT_REMOTE_HOST).replace(/\/?$/, '/');
  const template = (opts.remotePathTemplate ?? DEFAULT_REMOTE_PATH_TEMPLATE)
    .replaceAll('{model}', id)
    .replaceAll('{revision}', encodeURIComponent(opts.revision ?? 'main'));
  return host + template.replace(/^\//, '').replace(/\/?$/, '/') + file;
}

/** 700 -> "0.7 s", 20000 -> "20 s". */
const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))} s`;

const timeoutAdvice = (setting: string) =>
  `Check the network connection and proxy, raise ${setting}, or turn on attentionLens.offline and use a cached model or a local model folder.`;

/**
 * Downloads one file into the cache atomically: bytes go to a temp file that is renamed only
 * when complete (length checked against Content-Length), so a cut download leaves nothing behind.
 * `saveAs` names the cached file (default: as on the hub), relative to `folder`.
 * Returns false on 404 when the file is optional. A server that does not answer within the
 * connect timeout, or stops sending for the idle timeout, fails the download (DOWNLOAD_FAILED).
 */
async function downloadFile(id: string, file: string, folder: string, opts: ResolveOptions, required: boolean, saveAs = file): Promise<boolean> {
  const url = fileUrl(id, file, opts);
  const target = path.join(folder, saveAs);
  const temp = `${target}.part-${process.pid}-${Date.now()}`;
  const report = (loaded: number, total: number) =>
    opts.onProgress?.({ phase: 'download', file, loaded, total, message: `Downloading ${id}/${file}` });
  const cancelled = () => new EngineError('CANCELLED', 'Model download cancelled.');
  if (opts.signal?.aborted) throw cancelled();

  // One signal for fetch and its body: the caller's cancel, or a timeout (which says why in `timedOut`).
  const connectMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const controller = new AbortController();
  const onCancel = () => controller.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onCancel, { once: true });
  let timedOut: EngineError | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expire = (error: EngineError) => {
    timedOut = error;
    controller.abort(error);
  };
  const host = (u: string) => {
    try {
      return new URL(u).host;
    } catch {
      return u;
    }
  };
  timer = setTimeout(
    () => expire(new EngineError('DOWNLOAD_FAILED', `${host(url)} did not answer within ${seconds(connectMs)} when asked for ${id}/${file}. ${timeoutAdvice('attentionLens.download.connectTimeout')}`)),
    connectMs,
  );

  try {
    let response: Response;
    try {
      response = await fetch(url, { signal: controller.signal, redirect: 'follow' });
    } catch (e) {
      if (opts.signal?.aborted) throw cancelled();
      if (timedOut) throw timedOut;
      const cause = (e as Error & { cause?: Error }).cause?.message;
      throw new EngineError('DOWNLOAD_FAILED', `Could not reach ${url}: ${(e as Error).message}${cause ? ` (${cause})` : ''}. Check the network, or turn on offline mode and use a cached or local model.`);
    }
    clearTimeout(timer);
    if (response.status === 404 || response.status === 401) {
      await response.body?.cancel();
      if (!required) return false;
      throw new EngineError('MODEL_NOT_FOUND', `${id}/${file} was not found on the hub (HTTP ${response.status} from ${url}). Check the model id.`);
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new EngineError('DOWNLOAD_FAILED', `Downloading ${url} failed: HTTP ${response.status} ${response.statusText}.`);
    }

    const total = Number(response.headers.get('content-length') ?? 0);
    let loaded = 0;
    // Idle watch: one timer, re-armed for what is left of the pause since the last byte.
    let lastByte = performance.now();
    const watchIdle = () => {
      const left = idleMs - (performance.now() - lastByte);
      if (left > 0) timer = setTimeout(watchIdle, left);
      else {
        expire(
          new EngineError(
            'DOWNLOAD_FAILED',
            `The download of ${id}/${file} from ${host(response.url || url)} stalled: no data for ${seconds(idleMs)}, ` +
              `after ${loaded}${total ? ` of ${total}` : ''} bytes. ${timeoutAdvice('attentionLens.download.idleTimeout')}`,
          ),
        );
      }
    };
    timer = setTimeout(watchIdle, idleMs);

    fs.mkdirSync(path.dirname(target), { recursive: true });
    const out = fs.createWriteStream(temp);
    let lastReport = 0;
    try {
      report(0, total);
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        lastByte = performance.now();
        loaded += chunk.byteLength;
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        lastByte = performance.now(); // a slow disk is not a stalled server
        const now = Date.now();
        if (now - lastReport > 100) {
          lastReport = now;
          report(loaded, total);
        }
      }
      clearTimeout(timer);
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      if (total && loaded !== total) {
        throw new EngineError('DOWNLOAD_FAILED', `Download of ${id}/${file} was cut off (${loaded} of ${total} bytes). Try again.`);
      }
      fs.renameSync(temp, target);
      report(loaded, total || loaded);
      return true;
    } catch (e) {
      out.destroy();
      fs.rmSync(temp, { force: true });
      if (opts.signal?.aborted) throw cancelled();
      if (timedOut) throw timedOut;
      if (e instanceof EngineError) throw e;
      throw new EngineError('DOWNLOAD_FAILED', `Download of ${id}/${file} failed: ${(e as Error).message}. Try again.`);
    }
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onCancel);
  }
}

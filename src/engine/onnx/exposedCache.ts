// On-disk cache of attention-exposed graphs, keyed by the SHA-256 of the source model's bytes.
//
// Layout under <cacheDir>/exposed/ (<entry> is <sha>, then .nopast for a merged decoder's no-cache
// rewrite, .f16 for float16 attention outputs and .qkv for the rewrite that also captures queries,
// keys and values):
//   <entry>.onnx        the rewritten model
//   <entry>.json        manifest (format version, attention outputs, size); written last, so its
//                       presence means the entry is complete
//   <entry>.d/          instead of <entry>.onnx for models with external data: the rewritten model plus
//                       hard links (or copies) of the source's data files, since ONNX resolves
//                       `location` relative to the model file
//   by-path/<h>.json    pre-key: source path + size + mtime + inode -> sha, so a hit on an unchanged
//                       file skips hashing it (h = sha256 of the absolute source path)
// Every file is written to a temporary name and renamed into place, so a crash leaves either a
// complete entry or none.

import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../types';
import { exposeAttentionChunks, type AttentionKind, type ExposeOptions } from './exposeAttention';
import type { QkvLayerPlan } from './exposeQkv';

/** Bump when the rewrite changes in a way that invalidates old entries. */
export const EXPOSED_FORMAT_VERSION = 1;

export interface ExposedManifest {
  version: number;
  sha256: string;
  /** The rewritten model, relative to the `exposed` folder. */
  file: string;
  bytes: number;
  attentionOutputs: string[];
  /** ExposeOptions.qkv entries: what each layer's capture reads. */
  qkv?: QkvLayerPlan[];
  /** Encoder-decoder decoders: self or cross, per attention output. */
  attentionKinds?: AttentionKind[];
  externalData: string[];
  createdAt: string;
}

interface PreKey {
  path: string;
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

export interface LoadedExposedGraph {
  /** Absolute path of the rewritten model. */
  path: string;
  attentionOutputs: string[];
  qkv?: QkvLayerPlan[];
  attentionKinds?: AttentionKind[];
  /** Time this call took: hashing (or the pre-key check) on a hit, plus read, rewrite and write on a miss. */
  rewriteMs: number;
  cached: boolean;
}

/**
 * Returns a copy of the model at `sourcePath` whose attention probabilities are graph outputs,
 * rewriting it on first use and reusing the cached copy afterwards.
 */
export async function loadExposedGraph(sourcePath: string, cacheDir: string, modelLabel: string, options: ExposeOptions = {}): Promise<LoadedExposedGraph> {
  const started = performance.now();
  const entryOf = (sha: string) => `${sha}${options.inlineNoPast ? '.nopast' : ''}${options.float16 ? '.f16' : ''}${options.qkv ? '.qkv' : ''}`;
  const source = path.resolve(sourcePath);
  const dir = path.join(cacheDir, 'exposed');
  const stat = await statSource(source);
  const found = (hit: ExposedManifest) => ({
    path: path.join(dir, hit.file), attentionOutputs: hit.attentionOutputs, ...(hit.qkv ? { qkv: hit.qkv } : {}),
    ...(hit.attentionKinds ? { attentionKinds: hit.attentionKinds } : {}), rewriteMs: performance.now() - started, cached: true,
  });

  const preKeyFile = path.join(dir, 'by-path', `${sha256Hex(source)}.json`);
  let sha = await readPreKey(preKeyFile, source, stat);
  if (sha) {
    const hit = await readEntry(dir, sha, entryOf(sha), !!options.qkv);
    if (hit) return found(hit);
  }
  sha = await hashFile(source);
  const hit = await readEntry(dir, sha, entryOf(sha), !!options.qkv);
  if (hit) {
    await writePreKey(preKeyFile, source, stat, sha);
    return found(hit);
  }

  // Miss: read, rewrite, write. If the file changed since it was hashed, key it by what was read.
  const bytes = await readSource(source);
  const after = await statSource(source);
  if (after.size !== stat.size || after.mtimeMs !== stat.mtimeMs) sha = sha256Hex(bytes);

  let exposed: ReturnType<typeof exposeAttentionChunks>;
  try {
    exposed = exposeAttentionChunks(bytes, modelLabel, options);
  } catch (err) {
    if (err instanceof EngineError && err.code === 'MODEL_CORRUPT') {
      throw new EngineError('MODEL_CORRUPT', `${err.message} File: ${source}`);
    }
    throw err;
  }

  let file: string;
  try {
    await fs.promises.mkdir(dir, { recursive: true });
    if (exposed.externalDataLocations.length === 0) {
      file = `${entryOf(sha)}.onnx`;
      await writeAtomic(path.join(dir, file), exposed.chunks);
    } else {
      file = await writeWithExternalData(dir, entryOf(sha), source, exposed.chunks, exposed.externalDataLocations, modelLabel);
    }
    const manifest: ExposedManifest = {
      version: EXPOSED_FORMAT_VERSION,
      sha256: sha,
      file,
      bytes: exposed.length,
      attentionOutputs: exposed.attentionOutputs,
      ...(exposed.qkv ? { qkv: exposed.qkv } : {}),
      ...(exposed.attentionKinds ? { attentionKinds: exposed.attentionKinds } : {}),
      externalData: exposed.externalDataLocations,
      createdAt: new Date().toISOString(),
    };
    await writeAtomic(path.join(dir, `${entryOf(sha)}.json`), [Buffer.from(JSON.stringify(manifest, null, 2))]);
  } catch (err) {
    if (err instanceof EngineError) throw err;
    throw new EngineError('INTERNAL', `Cannot write the rewritten model for ${modelLabel} into ${dir}: ${(err as Error).message}`);
  }
  await writePreKey(preKeyFile, source, after, sha);
  return {
    path: path.join(dir, file), attentionOutputs: exposed.attentionOutputs, ...(exposed.qkv ? { qkv: exposed.qkv } : {}),
    ...(exposed.attentionKinds ? { attentionKinds: exposed.attentionKinds } : {}), rewriteMs: performance.now() - started, cached: false,
  };
}

async function statSource(source: string): Promise<fs.Stats> {
  try {
    const stat = await fs.promises.stat(source);
    if (!stat.isFile()) throw new EngineError('MODEL_NOT_FOUND', `${source} is not a file.`);
    return stat;
  } catch (err) {
    if (err instanceof EngineError) throw err;
    throw new EngineError('MODEL_NOT_FOUND', `Cannot read model file ${source}: ${(err as Error).message}`);
  }
}

async function readSource(source: string): Promise<Buffer> {
  try {
    return await fs.promises.readFile(source);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_FS_FILE_TOO_LARGE' || code === 'ERR_STRING_TOO_LONG') {
      // Protobuf cannot exceed 2 GiB either: such a file cannot be a valid self-contained ONNX model.
      throw new EngineError('MODEL_CORRUPT', `${source} is too large to be an ONNX model file (over 2 GiB without external data).`);
    }
    throw new EngineError('MODEL_NOT_FOUND', `Cannot read model file ${source}: ${(err as Error).message}`);
  }
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** SHA-256 of a file's content, streamed (constant memory). */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  const stream = fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The manifest of a complete, current entry, or null (missing, old format, unreadable, or wrong size). */
async function readEntry(dir: string, sha: string, entry: string, qkv: boolean): Promise<ExposedManifest | null> {
  try {
    const manifest = JSON.parse(await fs.promises.readFile(path.join(dir, `${entry}.json`), 'utf8')) as ExposedManifest;
    if (manifest.version !== EXPOSED_FORMAT_VERSION || manifest.sha256 !== sha || !Array.isArray(manifest.attentionOutputs)) return null;
    if (qkv && manifest.qkv?.length !== manifest.attentionOutputs.length) return null;
    if (typeof manifest.file !== 'string' || path.isAbsolute(manifest.file) || manifest.file.split(/[\\/]/).includes('..')) return null;
    const stat = await fs.promises.stat(path.join(dir, manifest.file));
    return stat.size === manifest.bytes ? manifest : null;
  } catch {
    return null;
  }
}

async function readPreKey(file: string, source: string, stat: fs.Stats): Promise<string | null> {
  try {
    const k = JSON.parse(await fs.promises.readFile(file, 'utf8')) as PreKey;
    const same = k.path === source && k.size === stat.size && k.mtimeMs === stat.mtimeMs && k.ino === stat.ino;
    return same && /^[0-9a-f]{64}$/.test(k.sha256) ? k.sha256 : null;
  } catch {
    return null;
  }
}

/** Best effort: a missing pre-key only costs a rehash next time. */
async function writePreKey(file: string, source: string, stat: fs.Stats, sha: string): Promise<void> {
  const key: PreKey = { path: source, size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino, sha256: sha };
  try {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    await writeAtomic(file, [Buffer.from(JSON.stringify(key))], false);
  } catch {
    // ignore
  }
}

const tempName = (target: string) => `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;

/** Writes chunks to a temporary file, flushes it, and renames it over `target`. */
async function writeAtomic(target: string, chunks: Uint8Array[], sync = true): Promise<void> {
  const tmp = tempName(target);
  try {
    const fh = await fs.promises.open(tmp, 'w');
    try {
      // writev takes at most IOV_MAX (1024) buffers per call on Linux; stay well below.
      for (let i = 0; i < chunks.length; i += 512) await fh.writev(chunks.slice(i, i + 512));
      if (sync) await fh.datasync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, target);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Models with external data: ONNX resolves each initializer's `location` relative to the model file,
 * so the rewritten model goes into its own folder next to links to (or copies of) the source's data files.
 * Returns the model's path relative to `dir`.
 */
async function writeWithExternalData(
  dir: string, entry: string, source: string, chunks: Uint8Array[], locations: string[], label: string,
): Promise<string> {
  const sourceDir = path.dirname(source);
  for (const loc of locations) {
    if (path.isAbsolute(loc) || loc.split(/[\\/]/).includes('..')) {
      throw new EngineError('MODEL_CORRUPT', `${label}: external data location "${loc}" points outside the model folder. File: ${source}`);
    }
  }
  const modelName = path.basename(source);
  const missing = locations.filter((loc) => !fs.existsSync(path.join(sourceDir, loc)));
  if (missing.length) throw missingExternalData(label, modelName, sourceDir, missing);
  const folder = `${entry}.d`;
  const final = path.join(dir, folder);
  const tmp = tempName(final);
  try {
    await fs.promises.mkdir(tmp, { recursive: true });
    for (const loc of locations) {
      const target = path.join(sourceDir, loc);
      const link = path.join(tmp, loc);
      await fs.promises.mkdir(path.dirname(link), { recursive: true });
      // A hard link, not a symlink: ONNX Runtime resolves symlinks and refuses data whose real path
      // is outside the model's folder. Across file systems, fall back to a (copy-on-write if possible) copy.
      try {
        await fs.promises.link(target, link);
      } catch {
        await fs.promises.copyFile(target, link, fs.constants.COPYFILE_FICLONE);
      }
    }
    await writeAtomic(path.join(tmp, modelName), chunks);
    await fs.promises.rm(final, { recursive: true, force: true }); // a stale, unreferenced folder
    await fs.promises.rename(tmp, final);
  } catch (err) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    // Another process finishing the same entry first is fine: its folder has the same content.
    const code = (err as NodeJS.ErrnoException).code;
    if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && fs.existsSync(path.join(final, modelName)))) throw err;
  }
  return path.join(folder, modelName);
}

/**
 * The error for external data files a model references but its folder lacks. The two common names
 * get mixed up when files are moved between tools (transformers.js expects `model.onnx_data`,
 * onnxruntime-genai's builder writes `model.onnx.data`), and only the name recorded in the model works.
 */
function missingExternalData(label: string, modelName: string, sourceDir: string, missing: string[]): EngineError {
  const renames = missing.flatMap((loc) => {
    const other = loc.endsWith('.onnx.data') ? loc.replace(/\.onnx\.data$/, '.onnx_data') : loc.endsWith('.onnx_data') ? loc.replace(/_data$/, '.data') : null;
    return other && fs.existsSync(path.join(sourceDir, other)) ? [`${other} to ${loc}`] : [];
  });
  return new EngineError(
    'MODEL_NOT_FOUND',
    `${label}: ${modelName} keeps its weights in ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not in ${sourceDir}. ` +
      (renames.length
        ? `The folder has them under another name: rename ${renames.join(', ')} (the model reads the name recorded in it).`
        : `Copy ${missing.length > 1 ? 'them' : 'it'} next to ${modelName}.`),
  );
}

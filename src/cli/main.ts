// attention-lens: the command-line face of the engine, and the headless export for scripts.
//   attention-lens --model <folder|hub-id> (--text <string> | --file <path>) --out <prefix> [--html <file>] [--qkv] [--dtype fp32|fp16|q8|...] [--offline]
// Writes <prefix>.json (model, tokens, shape) and <prefix>.npy (float32 [L, H, T, T]), with --qkv each
// head's queries, keys, values and value norms beside them, and with --html the standalone HTML
// report the extension's Export HTML Report writes. --generate N first continues the text by N
// tokens. An encoder-decoder model reads the text as its source and writes its target (or is
// teacher-forced with --target): <prefix>.encoder.npy, .decoder.npy and .cross.npy.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { AttentionEngine } from '../engine/engine';
import { valueNorms } from '../engine/qkv';
import { DTYPES, EngineError, type AttentionResult, type DtypeChoice, type QkvCapture, type RuntimeChoice, type Seq2seqResult, type TokenSpan } from '../engine/types';
import { encodeF16 } from '../analysis/f16';
import { runStartMessage } from '../run/messages';
import { dataJsonCore, dataJsonText } from '../export/data';
import { npyBytes } from '../export/npy';
import { readReportAssets, reportChunks, type ReportAssets } from '../export/report';

const USAGE = `Usage: attention-lens --model <folder|hub-id> (--text <string> | --file <path>) --out <prefix> [--html <file>] [--qkv]
                      [--generate N] [--target <string>] [--max-new-tokens N]
                      [--dtype ${DTYPES.join('|')}] [--offline]
                      [--runtime auto|cpu|wasm|webgpu] [--max-tokens N] [--cache-dir <folder>]

--dtype picks the ONNX file as transformers.js names them: fp32 onnx/model.onnx, fp16 model_fp16,
q8 model_quantized, int8 model_int8, uint8 model_uint8, q4 model_q4, q4f16 model_q4f16, bnb4 model_bnb4.

Writes <prefix>.json ({model, tokens, shape}) and <prefix>.npy (float32, shape [layers, heads, T, T];
row = query token, column = key token). --html writes a standalone HTML report of the run (the
views with hovers and the text; opens offline in any browser); with --html, --out may be left out.

--qkv also writes <prefix>.q.npy, .k.npy, .v.npy (float32 [layers, heads, T, d]: queries and keys
after rotary embeddings, K and V repeated to the query heads under grouped-query attention) and
<prefix>.value_norm.npy ([layers, heads, T, T]: ||a_ij v_j W_O^h||, or ||a_ij v_j|| where the graph's
output projection was not found: the JSON's "value_norm" says which), and the score scale, mask
and KV head of each query head under "qkv" in the JSON.

--generate N (decoder-only models) first writes up to N tokens after the text, greedily; they come
last in "tokens", marked "generated": true (start and end -1: they are not in the text), the JSON's
"generation" has their text, and <prefix>.npy covers the whole sequence.

Encoder-decoder models (onnx/encoder_model.onnx with onnx/decoder_model_merged.onnx or
onnx/decoder_model.onnx): the text is the source; the model writes the target greedily (at most
--max-new-tokens N, default the model's generation_config, else 64), or --target <string> is
teacher-forced. Writes <prefix>.json ({model, sourceTokens with ranges in the text, targetTokens
with ranges in targetText (the start token first, -1), targetText, generatedText, forced, finished,
shapes}), <prefix>.encoder.npy [layers, heads, S, S], <prefix>.decoder.npy [layers, heads, T, T]
and <prefix>.cross.npy [layers, heads, T, S] (row = target token, column = source token), float32.
T counts the start token and not the end token that stopped generation.`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        text: { type: 'string' },
        file: { type: 'string' },
        out: { type: 'string' },
        html: { type: 'string' },
        qkv: { type: 'boolean', default: false },
        generate: { type: 'string' },
        target: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        dtype: { type: 'string', default: 'fp32' },
        runtime: { type: 'string', default: 'auto' },
        offline: { type: 'boolean', default: false },
        'max-tokens': { type: 'string' },
        'cache-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`attention-lens: ${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const fail = (msg: string, code = 2) => {
    process.stderr.write(`attention-lens: ${msg}\n`);
    return code;
  };
  if (!values.model) return fail(`--model is required.\n\n${USAGE}`);
  if (!values.out && !values.html) return fail(`--out is required (or --html).\n\n${USAGE}`);
  if (values.qkv && !values.out) return fail('--qkv needs --out (it writes <prefix>.q.npy and the like).');
  if ((values.text === undefined) === (values.file === undefined)) return fail('give exactly one of --text or --file.');
  if (!(DTYPES as readonly string[]).includes(values.dtype!)) return fail(`--dtype must be one of ${DTYPES.join(', ')}, not "${values.dtype}".`);
  if (!['auto', 'cpu', 'wasm', 'webgpu'].includes(values.runtime!)) return fail(`--runtime must be auto, cpu, wasm or webgpu.`);
  const positive = (name: 'max-tokens' | 'generate' | 'max-new-tokens') => {
    const v = values[name] === undefined ? undefined : Number(values[name]);
    return v === undefined || (Number.isInteger(v) && v > 0) ? { v } : null;
  };
  const maxTokens = positive('max-tokens');
  if (!maxTokens) return fail('--max-tokens must be a positive integer.');
  const generate = positive('generate');
  if (!generate) return fail('--generate must be a positive integer (the tokens to write).');
  const maxNewTokens = positive('max-new-tokens');
  if (!maxNewTokens) return fail('--max-new-tokens must be a positive integer.');

  let text: string;
  if (values.file !== undefined) {
    try {
      text = fs.readFileSync(values.file, 'utf8');
    } catch (e) {
      return fail(`cannot read ${values.file}: ${(e as Error).message}`);
    }
  } else text = values.text!;

  // The report's script and styles are read before the model runs: a missing build fails at once.
  let assets: ReportAssets | null = null;
  try {
    if (values.html) assets = readReportAssets(path.join(__dirname, 'webview'));
  } catch (e) {
    return fail((e as Error).message, 1);
  }

  const cacheDir = values['cache-dir'] ?? process.env.ATTENTION_LENS_CACHE ?? path.join(os.homedir(), '.cache', 'attention-lens');
  const engine = new AttentionEngine({
    cacheDir,
    offline: values.offline,
    dtype: values.dtype as DtypeChoice,
    runtime: values.runtime as RuntimeChoice,
  });
  try {
    const info = await engine.load(values.model, {
      onProgress: (p) => {
        if (p.phase === 'download' && p.total) process.stderr.write(`\r${p.message}: ${Math.round((100 * (p.loaded ?? 0)) / p.total)}%`);
      },
    });
    if (info.seq2seq) {
      const refused = values.generate !== undefined ? '--generate' : values.html ? '--html' : values.qkv ? '--qkv' : null;
      if (refused) return fail(`${refused} is not available for an encoder-decoder model (${values.model}): it writes its own target (--max-new-tokens N) or is teacher-forced (--target <string>).`);
      if (!values.out) return fail('--out is required for an encoder-decoder model.');
      const result = await engine.analyzeSeq2seq(values.model, text, { maxTokens: maxTokens.v, target: values.target, maxNewTokens: maxNewTokens.v });
      for (const notice of result.notices) process.stderr.write(`attention-lens: ${notice}\n`);
      writeSeq2seq(values.out, result);
      return 0;
    }
    if (values.target !== undefined) return fail(`--target is for encoder-decoder models; ${values.model} is decoder-only or an encoder (use --generate N to continue the text).`);
    if (values['max-new-tokens'] !== undefined) return fail(`--max-new-tokens is for encoder-decoder models; continue a decoder-only model's text with --generate N.`);
    const options = { maxTokens: maxTokens.v, encoding: 'f32' as const, qkv: values.qkv };
    const result = generate.v !== undefined
      ? await engine.generate(values.model, text, { ...options, maxNewTokens: generate.v })
      : await engine.analyze(values.model, text, options);
    for (const notice of result.notices) process.stderr.write(`attention-lens: ${notice}\n`);
    if (values.out) {
      fs.mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
      const core = dataJsonCore(result.model, result.tokens, result.shape, result.truncation);
      const qkvJson = result.qkv ? writeQkv(values.out, result, result.qkv) : {};
      const generation = result.generation
        ? { tokens: core.tokens.map((t, i) => (result.tokens[i].generated ? { ...t, generated: true } : t)), generation: result.generation }
        : {};
      fs.writeFileSync(`${values.out}.json`, dataJsonText({ ...core, ...generation, ...qkvJson }));
      fs.writeFileSync(`${values.out}.npy`, npyBytes(result.attention as Float32Array, result.shape));
      process.stderr.write(`attention-lens: wrote ${values.out}.json and ${values.out}.npy [${result.shape.join(', ')}]${result.qkv ? ' with .q, .k, .v and .value_norm.npy' : ''}\n`);
    }
    if (values.html && assets) {
      // The run as the extension holds it (tokens on the text, cut where the engine cut it), in float16 as the panel gets it.
      const start = runStartMessage(result, { runId: 1, text, offset: 0, label: values.file === undefined ? '' : path.basename(values.file) });
      const { model, tokens, source, truncation, notices } = start;
      const snapshot = { model, tokens, source, truncation, notices, sourceText: start.sourceText!, runtime: result.runtime, attention: encodeF16(result.attention as Float32Array) };
      fs.mkdirSync(path.dirname(path.resolve(values.html)), { recursive: true });
      const fd = fs.openSync(values.html, 'w');
      try {
        for (const chunk of reportChunks(snapshot, assets)) fs.writeSync(fd, chunk.text);
      } finally {
        fs.closeSync(fd);
      }
      process.stderr.write(`attention-lens: wrote ${values.html}\n`);
    }
    return 0;
  } catch (e) {
    return fail(e instanceof EngineError ? e.message : `unexpected error: ${(e as Error).stack ?? e}`, 1);
  } finally {
    await engine.dispose();
  }
}

/** An encoder-decoder run: <prefix>.json and the three attention arrays. */
function writeSeq2seq(prefix: string, r: Seq2seqResult): void {
  const s = r.model.seq2seq!;
  const token = (t: TokenSpan) => ({ text: t.text, id: t.id, start: t.start, end: t.end, special: t.special, ...(t.generated ? { generated: true } : {}) });
  const json = {
    model: {
      id: r.model.id,
      architecture: r.model.architecture,
      encoder: { layers: s.encoder.layers, heads: r.encoderShape[1] },
      decoder: { layers: s.decoder.layers, heads: r.decoderShape[1] },
    },
    sourceTokens: r.sourceTokens.map(token),
    targetTokens: r.targetTokens.map(token),
    targetText: r.targetText,
    ...(r.forced ? {} : { generatedText: r.targetText }),
    forced: r.forced,
    finished: r.finished,
    shapes: { encoder: r.encoderShape, decoder: r.decoderShape, cross: r.crossShape },
    truncation: r.truncation,
  };
  fs.mkdirSync(path.dirname(path.resolve(prefix)), { recursive: true });
  fs.writeFileSync(`${prefix}.json`, dataJsonText(json));
  fs.writeFileSync(`${prefix}.encoder.npy`, npyBytes(r.encoder, r.encoderShape));
  fs.writeFileSync(`${prefix}.decoder.npy`, npyBytes(r.decoder, r.decoderShape));
  fs.writeFileSync(`${prefix}.cross.npy`, npyBytes(r.cross, r.crossShape));
  process.stderr.write(
    `attention-lens: ${r.forced ? 'teacher-forced' : `generated "${r.targetText}"${r.finished ? '' : ' (no end token)'}`}; wrote ${prefix}.json, ` +
      `.encoder.npy [${r.encoderShape.join(', ')}], .decoder.npy [${r.decoderShape.join(', ')}] and .cross.npy [${r.crossShape.join(', ')}]\n`,
  );
}

/** Writes the --qkv arrays next to <prefix>.npy and returns what the JSON says of them. */
function writeQkv(prefix: string, result: AttentionResult, qkv: QkvCapture): object {
  const [L, H, T] = result.shape;
  const d = qkv.headDim;
  const stack = (layers: Float32Array[], size: number) => {
    const all = new Float32Array(L * size);
    layers.forEach((x, l) => all.set(x, l * size));
    return all;
  };
  for (const [name, layers] of [['q', qkv.q], ['k', qkv.k], ['v', qkv.v]] as const) {
    fs.writeFileSync(`${prefix}.${name}.npy`, npyBytes(stack(layers, H * T * d), [L, H, T, d]));
  }
  // One kind for the whole file: projected only when every layer's W_O was found.
  const projected = qkv.outputProjection.every((w) => w !== null);
  const attention = result.attention as Float32Array;
  const norms = qkv.v.map((v, l) => valueNorms(attention.subarray(l * H * T * T, (l + 1) * H * T * T), v, projected ? qkv.outputProjection[l] : null, H, T, d));
  fs.writeFileSync(`${prefix}.value_norm.npy`, npyBytes(stack(norms, H * T * T), [L, H, T, T]));
  return {
    qkv: { shape: [L, H, T, d], scale: qkv.scale, mask: qkv.mask, kvHeadOf: qkv.kvHeadOf },
    value_norm: projected ? 'output-projected' : 'value-only',
  };
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}

// attention-lens: the command-line face of the engine, and the headless export for scripts.
//   attention-lens --model <folder|hub-id> (--text <string> | --file <path>) --out <prefix> [--html <file>] [--dtype fp32|fp16|q8|...] [--offline]
// Writes <prefix>.json (model, tokens, shape) and <prefix>.npy (float32 [L, H, T, T]), and with
// --html the standalone HTML report the extension's Export HTML Report writes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { AttentionEngine } from '../engine/engine';
import { DTYPES, EngineError, type DtypeChoice, type RuntimeChoice } from '../engine/types';
import { encodeF16 } from '../analysis/f16';
import { runStartMessage } from '../run/messages';
import { dataJsonCore, dataJsonText } from '../export/data';
import { npyBytes } from '../export/npy';
import { readReportAssets, reportChunks, type ReportAssets } from '../export/report';

const USAGE = `Usage: attention-lens --model <folder|hub-id> (--text <string> | --file <path>) --out <prefix> [--html <file>]
                      [--dtype ${DTYPES.join('|')}] [--offline]
                      [--runtime auto|cpu|wasm|webgpu] [--max-tokens N] [--cache-dir <folder>]

--dtype picks the ONNX file as transformers.js names them: fp32 onnx/model.onnx, fp16 model_fp16,
q8 model_quantized, int8 model_int8, uint8 model_uint8, q4 model_q4, q4f16 model_q4f16, bnb4 model_bnb4.

Writes <prefix>.json ({model, tokens, shape}) and <prefix>.npy (float32, shape [layers, heads, T, T];
row = query token, column = key token). --html writes a standalone HTML report of the run (the
views with hovers and the text; opens offline in any browser); with --html, --out may be left out.`;

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
  if ((values.text === undefined) === (values.file === undefined)) return fail('give exactly one of --text or --file.');
  if (!(DTYPES as readonly string[]).includes(values.dtype!)) return fail(`--dtype must be one of ${DTYPES.join(', ')}, not "${values.dtype}".`);
  if (!['auto', 'cpu', 'wasm', 'webgpu'].includes(values.runtime!)) return fail(`--runtime must be auto, cpu, wasm or webgpu.`);
  const maxTokens = values['max-tokens'] === undefined ? undefined : Number(values['max-tokens']);
  if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens > 0)) return fail('--max-tokens must be a positive integer.');

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
    const result = await engine.analyze(values.model, text, {
      maxTokens,
      encoding: 'f32',
      onProgress: (p) => {
        if (p.phase === 'download' && p.total) process.stderr.write(`\r${p.message}: ${Math.round((100 * (p.loaded ?? 0)) / p.total)}%`);
      },
    });
    for (const notice of result.notices) process.stderr.write(`attention-lens: ${notice}\n`);
    if (values.out) {
      fs.mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
      fs.writeFileSync(`${values.out}.json`, dataJsonText(dataJsonCore(result.model, result.tokens, result.shape, result.truncation)));
      fs.writeFileSync(`${values.out}.npy`, npyBytes(result.attention as Float32Array, result.shape));
      process.stderr.write(`attention-lens: wrote ${values.out}.json and ${values.out}.npy [${result.shape.join(', ')}]\n`);
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

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}

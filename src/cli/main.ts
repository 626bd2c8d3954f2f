// attention-lens: the command-line face of the engine, and the headless export for scripts.
//   attention-lens --model <folder|hub-id> (--text <string> | --file <path>) --out <prefix> [--dtype fp32|fp16|q8|...] [--offline]
// Writes <prefix>.json (model, tokens, shape) and <prefix>.npy (float32 [L, H, T, T]).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { AttentionEngine } from '../engine/engine';
import { DTYPES, EngineError, type DtypeChoice, type RuntimeChoice } from '../engine/types';
import { npyBytes } from './npy';

const USAGE = `Usage: attention-lens --model <folder|hub-id> (--text <string> | --file <path>) --out <prefix>
                      [--dtype ${DTYPES.join('|')}] [--offline]
                      [--runtime auto|cpu|wasm|webgpu] [--max-tokens N] [--cache-dir <folder>]

--dtype picks the ONNX file as transformers.js names them: fp32 onnx/model.onnx, fp16 model_fp16,
q8 model_quantized, int8 model_int8, uint8 model_uint8, q4 model_q4, q4f16 model_q4f16, bnb4 model_bnb4.

Writes <prefix>.json ({model, tokens, shape}) and <prefix>.npy (float32, shape [layers, heads, T, T];
row = query token, column = key token).`;

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
  if (!values.out) return fail(`--out is required.\n\n${USAGE}`);
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
    const json = {
      model: { id: result.model.id, architecture: result.model.architecture, layers: result.model.layers, heads: result.model.heads },
      tokens: result.tokens.map((t) => ({ text: t.text, start: t.start, end: t.end, special: t.special })),
      shape: result.shape,
      truncation: result.truncation,
    };
    fs.mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
    fs.writeFileSync(`${values.out}.json`, JSON.stringify(json, null, 1) + '\n');
    fs.writeFileSync(`${values.out}.npy`, npyBytes(result.attention as Float32Array, result.shape));
    process.stderr.write(`attention-lens: wrote ${values.out}.json and ${values.out}.npy [${result.shape.join(', ')}]\n`);
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

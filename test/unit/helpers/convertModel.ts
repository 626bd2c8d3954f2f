// Test-only converters that make, in memory, the kinds of files transformers.js exports ship beside
// model.onnx: float16 weights (model_fp16.onnx), 4-bit block-quantized MatMuls (model_q4.onnx,
// model_q4f16.onnx), and weights kept in an external data file. They let the engine's dtypes be
// checked offline on a real pretrained model (stories260K) without the Python tool chain.
import { onnx } from 'onnx-proto';
import { encodeF16, f16BitsToNumber, numberToF16Bits } from '../../../src/analysis/f16';

const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;
/** The largest finite float16. */
const F16_MAX = 65504;

/** int64 fields decode as Long objects (or numbers); Number() reads both. */
const num = (v: unknown) => Number(v ?? 0);

/** Float32 or float16 tensor values as numbers (raw_data or float_data). */
function floatValues(t: onnx.ITensorProto): Float32Array {
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) throw new Error(`${t.name}: external data is not supported here`);
  // A copy: decoded bytes are views into the whole model buffer, at any alignment.
  const raw = new Uint8Array(t.rawData ?? []);
  if (t.dataType === DT.FLOAT16) {
    const bits = raw.length ? new Uint16Array(raw.buffer) : Uint16Array.from(t.int32Data ?? []);
    return Float32Array.from(bits, f16BitsToNumber);
  }
  return raw.length ? new Float32Array(raw.buffer) : Float32Array.from(t.floatData ?? []);
}

/** float32 -> float16 bytes, clamped to the finite range: exports use huge negative constants (-1e9, -3.4e38)
 *  for masks, and as -inf they would turn 0 * mask into NaN. */
function halfBytes(values: Float32Array): Uint8Array {
  const clamped = values.map((v) => Math.max(-F16_MAX, Math.min(F16_MAX, v)));
  return new Uint8Array(encodeF16(clamped).buffer);
}

function tensorToFloat16(t: onnx.ITensorProto): void {
  if (t.dataType !== DT.FLOAT) return;
  t.rawData = halfBytes(floatValues(t));
  t.floatData = [];
  t.dataType = DT.FLOAT16;
}

function graphToFloat16(g: onnx.IGraphProto): void {
  for (const t of g.initializer ?? []) tensorToFloat16(t);
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])]) {
    const tt = v.type?.tensorType;
    if (tt?.elemType === DT.FLOAT) tt.elemType = DT.FLOAT16;
  }
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (n.opType === 'Cast' && a.name === 'to' && num(a.i) === DT.FLOAT) a.i = DT.FLOAT16;
      if (a.t) tensorToFloat16(a.t); // Constant and ConstantOfShape values
      if (a.g) graphToFloat16(a.g);
      for (const sub of a.graphs ?? []) graphToFloat16(sub);
    }
  }
}

/**
 * The model with every float32 initializer, graph input/output/value_info type, Cast-to-float and
 * Constant value turned into float16 (integer types kept): what a model_fp16.onnx export computes in.
 */
export function toFloat16(modelBytes: Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(modelBytes);
  graphToFloat16(model.graph!);
  return onnx.ModelProto.encode(model).finish();
}

export interface Q4Options {
  /** Weights per quantization block along K (a power of two, at least 16). */
  blockSize: number;
  /** Symmetric: zero point 8 for every block, none stored (what transformers.js' q4 uses). Asymmetric stores packed zero points. */
  symmetric?: boolean;
  /** MatMulNBits' accuracy_level attribute (0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 compute). */
  accuracyLevel?: number;
}

interface Quantized {
  /** [N, blocks, blockSize / 2]: two 4-bit codes per byte, the first in the low nibble. */
  packed: Uint8Array;
  /** [N * blocks] */
  scales: Float32Array;
  /** [N * ceil(blocks / 2)], packed like `packed`; null when symmetric. */
  zeroPoints: Uint8Array | null;
}

/** 4-bit block quantization of a row-major [K, N] matrix along K, as MatMulNBits stores it (column by column). */
export function quantize4(w: Float32Array, K: number, N: number, blockSize: number, symmetric: boolean, halfScales = false): Quantized {
  const blocks = Math.ceil(K / blockSize);
  const packed = new Uint8Array(N * blocks * (blockSize / 2));
  const scales = new Float32Array(N * blocks);
  const zpCols = Math.ceil(blocks / 2);
  const zeroPoints = symmetric ? null : new Uint8Array(N * zpCols);
  const v = new Float32Array(blockSize);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      v.fill(0); // K not a multiple of the block: the tail is padded with zeros
      for (let i = 0; i < blockSize && b * blockSize + i < K; i++) v[i] = w[(b * blockSize + i) * N + n];
      let scale: number;
      let zero: number;
      if (symmetric) {
        // The value of largest magnitude maps to code 0 (-8 after the zero point): the full range [-8, 7].
        let extreme = 0;
        for (const x of v) if (Math.abs(x) > Math.abs(extreme)) extreme = x;
        scale = extreme / -8;
        zero = 8;
      } else {
        let lo = 0;
        let hi = 0;
        for (const x of v) {
          lo = Math.min(lo, x);
          hi = Math.max(hi, x);
        }
        scale = (hi - lo) / 15;
        zero = scale ? Math.min(15, Math.max(0, Math.round(-lo / scale))) : 0;
      }
      // Quantize with the scale the model will store, so codes and dequantization agree.
      if (halfScales) scale = f16BitsToNumber(numberToF16Bits(scale));
      const inv = scale ? 1 / scale : 0;
      const base = (n * blocks + b) * (blockSize / 2);
      for (let i = 0; i < blockSize; i++) {
        const q = Math.min(15, Math.max(0, Math.round(v[i] * inv) + zero));
        packed[base + (i >> 1)] |= i & 1 ? q << 4 : q;
      }
      scales[n * blocks + b] = scale;
      if (zeroPoints) zeroPoints[n * zpCols + (b >> 1)] |= b & 1 ? zero << 4 : zero;
    }
  }
  return { packed, scales, zeroPoints };
}

/**
 * The model with every MatMul whose second input is a 2D float32 or float16 initializer [K, N]
 * replaced by com.microsoft.MatMulNBits (bits 4): model_q4.onnx from a float32 model, and
 * model_q4f16.onnx from a toFloat16 one (scales then in float16, as MatMulNBits wants them in A's type).
 */
export function toQ4(modelBytes: Uint8Array, opts: Q4Options): Uint8Array {
  const { blockSize, symmetric = true, accuracyLevel } = opts;
  const model = onnx.ModelProto.decode(modelBytes);
  const g = model.graph!;
  const initializers = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
  const quantizedOf = new Map<string, string[]>();
  const added: onnx.ITensorProto[] = [];

  g.node = (g.node ?? []).map((n) => {
    const w = n.opType === 'MatMul' && !n.domain ? initializers.get(n.input![1]) : undefined;
    if (!w || w.dims?.length !== 2 || (w.dataType !== DT.FLOAT && w.dataType !== DT.FLOAT16)) return n;
    const [K, N] = w.dims.map(num);
    const half = w.dataType === DT.FLOAT16;
    let inputs = quantizedOf.get(w.name!);
    if (!inputs) {
      const q = quantize4(floatValues(w), K, N, blockSize, symmetric, half);
      const blocks = Math.ceil(K / blockSize);
      inputs = [`${w.name}_Q4`, `${w.name}_scales`];
      added.push(
        { name: inputs[0], dataType: DT.UINT8, dims: [N, blocks, blockSize / 2], rawData: q.packed },
        { name: inputs[1], dataType: w.dataType, dims: [N * blocks], rawData: half ? new Uint8Array(encodeF16(q.scales).buffer) : new Uint8Array(q.scales.buffer) },
      );
      if (q.zeroPoints) {
        inputs.push(`${w.name}_zp`);
        added.push({ name: inputs[2], dataType: DT.UINT8, dims: [q.zeroPoints.length], rawData: q.zeroPoints });
      }
      quantizedOf.set(w.name!, inputs);
    }
    const int = (name: string, i: number): onnx.IAttributeProto => ({ name, i, type: AT.INT });
    return {
      name: n.name ? `${n.name}_Q4` : '',
      opType: 'MatMulNBits',
      domain: 'com.microsoft',
      input: [n.input![0], ...inputs],
      output: n.output,
      attribute: [int('K', K), int('N', N), int('bits', 4), int('block_size', blockSize), ...(accuracyLevel === undefined ? [] : [int('accuracy_level', accuracyLevel)])],
    };
  });

  // Drop the float weights nothing reads any more (a weight shared with a Gather, e.g. tied embeddings, stays).
  const read = new Set(g.node.flatMap((n) => n.input ?? []));
  g.initializer = [...(g.initializer ?? []).filter((t) => read.has(t.name!)), ...added];
  if (!(model.opsetImport ?? []).some((o) => o.domain === 'com.microsoft')) {
    model.opsetImport = [...(model.opsetImport ?? []), { domain: 'com.microsoft', version: 1 }];
  }
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The model with every initializer of at least `minBytes` moved into one external data file named
 * `location` (relative to the model file), as big exports are saved: returns the model and the file's bytes.
 */
export function toExternalData(modelBytes: Uint8Array, location: string, minBytes = 1024): { model: Uint8Array; data: Uint8Array } {
  const model = onnx.ModelProto.decode(modelBytes);
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const t of model.graph!.initializer ?? []) {
    const raw = t.rawData ?? new Uint8Array(0);
    if (raw.length < minBytes) continue;
    parts.push(raw);
    t.rawData = new Uint8Array(0);
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.externalData = [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(raw.length) },
    ];
    offset += raw.length;
  }
  return { model: onnx.ModelProto.encode(model).finish(), data: Buffer.concat(parts) };
}

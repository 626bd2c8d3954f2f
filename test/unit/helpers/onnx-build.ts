// Small builders for hand-made ONNX models in tests (onnx-proto), plus running helpers for onnxruntime-node.
import * as fs from 'node:fs';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';

export const T = onnx.TensorProto.DataType;

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: onnx.IAttributeProto[];
}

export function node(spec: NodeSpec): onnx.INodeProto {
  return { opType: spec.op, input: spec.inputs, output: spec.outputs, name: spec.name ?? '', domain: spec.domain ?? '', attribute: spec.attrs ?? [] };
}

export const attrInt = (name: string, i: number): onnx.IAttributeProto => ({ name, i, type: onnx.AttributeProto.AttributeType.INT });
export const attrInts = (name: string, ints: number[]): onnx.IAttributeProto => ({ name, ints, type: onnx.AttributeProto.AttributeType.INTS });
export const attrFloat = (name: string, f: number): onnx.IAttributeProto => ({ name, f, type: onnx.AttributeProto.AttributeType.FLOAT });
export const attrGraph = (name: string, g: onnx.IGraphProto): onnx.IAttributeProto => ({ name, g, type: onnx.AttributeProto.AttributeType.GRAPH });

/** A tensor ValueInfo; dims are numbers or symbolic names. */
export function valueInfo(name: string, elemType: number, dims?: (number | string)[]): onnx.IValueInfoProto {
  const shape = dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined;
  return { name, type: { tensorType: { elemType, shape } } };
}

export function floatTensor(name: string, dims: number[], data: ArrayLike<number>): onnx.ITensorProto {
  const f = Float32Array.from(data);
  return { name, dims, dataType: T.FLOAT, rawData: new Uint8Array(f.buffer) };
}

export function int64Tensor(name: string, dims: number[], data: number[]): onnx.ITensorProto {
  const a = BigInt64Array.from(data.map(BigInt));
  return { name, dims, dataType: T.INT64, rawData: new Uint8Array(a.buffer) };
}

export interface ModelSpec {
  nodes: onnx.INodeProto[];
  inputs: onnx.IValueInfoProto[];
  outputs: onnx.IValueInfoProto[];
  initializers?: onnx.ITensorProto[];
  valueInfo?: onnx.IValueInfoProto[];
  opsets?: { domain?: string; version: number }[];
}

/** Decoded messages are class instances whose repeated fields are always arrays; the typings say optional. */
export const decodedGraph = (g: onnx.IGraphProto | null | undefined) => g as onnx.GraphProto;
export const decodedNode = (n: onnx.INodeProto) => n as onnx.NodeProto;
export const graphOf = (bytes: Uint8Array) => decodedGraph(onnx.ModelProto.decode(bytes).graph);

export function encodeModel(spec: ModelSpec): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'attention-lens-test',
    opsetImport: spec.opsets ?? [{ domain: '', version: 17 }],
    graph: {
      name: 'test',
      node: spec.nodes,
      input: spec.inputs,
      output: spec.outputs,
      initializer: spec.initializers ?? [],
      valueInfo: spec.valueInfo ?? [],
    },
  }).finish();
}

/**
 * Builds a merged decoder (`decoder_model_merged.onnx` layout) from a plain decoder: the main graph
 * takes the decoder's inputs plus a bool `use_cache_branch`, and one If node runs a copy of the decoder
 * body in each branch. Tensor and node names inside each branch get a prefix so they stay unique;
 * graph inputs (and initializers when kept at the top level) are captured from the outer scope.
 */
export function makeMergedDecoder(plainModel: Uint8Array, initializers: 'top' | 'branches'): Uint8Array {
  const model = onnx.ModelProto.decode(plainModel);
  const g = decodedGraph(model.graph);
  const outer = new Set(g.input.map((i) => i.name!));
  if (initializers === 'top') for (const t of g.initializer) outer.add(t.name!);
  const branch = (prefix: string): onnx.IGraphProto => {
    const rename = (n: string) => (n === '' || outer.has(n) ? n : `${prefix}${n}`);
    return {
      name: `${prefix}branch`,
      node: g.node.map((n) => n as onnx.NodeProto).map((n) => ({ ...n, name: `${prefix}${n.name}`, input: n.input.map(rename), output: n.output.map(rename) })),
      initializer: initializers === 'branches' ? g.initializer.map((t) => ({ ...t, name: rename(t.name!) })) : [],
      input: [],
      output: g.output.map((o) => ({ ...o, name: rename(o.name!) })),
    };
  };
  const merged: onnx.IModelProto = {
    ...model,
    graph: {
      name: 'merged',
      input: [...g.input, valueInfo('use_cache_branch', T.BOOL, [1])],
      output: g.output,
      initializer: initializers === 'top' ? g.initializer : [],
      node: [
        node({
          op: 'If',
          name: 'optimum::if',
          inputs: ['use_cache_branch'],
          outputs: g.output.map((o) => o.name!),
          attrs: [attrGraph('then_branch', branch('then')), attrGraph('else_branch', branch('else'))],
        }),
      ],
    },
  };
  return onnx.ModelProto.encode(merged).finish();
}

export const int64 = (rows: number[][]) =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

/** Feeds for a GPT-2/Llama-style decoder: int64 ids/mask/positions and an empty past for every layer. */
export function decoderFeeds(
  session: ort.InferenceSession,
  c: { input_ids: number[][]; attention_mask: number[][]; position_ids?: number[][] },
  kvHeads: number,
  headDim: number,
): Record<string, ort.Tensor> {
  const batch = c.input_ids.length;
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    if (name === 'input_ids') feeds[name] = int64(c.input_ids);
    else if (name === 'attention_mask') feeds[name] = int64(c.attention_mask);
    else if (name === 'position_ids') feeds[name] = int64(c.position_ids ?? c.input_ids.map((r) => r.map((_, i) => i)));
    else if (name.startsWith('past_key_values.')) feeds[name] = new ort.Tensor('float32', new Float32Array(0), [batch, kvHeads, 0, headDim]);
    else if (name === 'use_cache_branch') feeds[name] = new ort.Tensor('bool', [false], [1]);
    else throw new Error(`unexpected decoder input ${name}`);
  }
  return feeds;
}

export function readBytes(path: string): Uint8Array {
  return fs.readFileSync(path);
}

/** Max |a - b| between a stacked reference [layers, ...] and per-layer outputs. */
export function maxAbsDiff(reference: Float32Array, layers: Float32Array[]): number {
  const per = reference.length / layers.length;
  let worst = 0;
  layers.forEach((data, l) => {
    if (data.length !== per) throw new Error(`layer ${l} has ${data.length} values, expected ${per}`);
    for (let i = 0; i < per; i++) worst = Math.max(worst, Math.abs(reference[l * per + i] - data[i]));
  });
  return worst;
}

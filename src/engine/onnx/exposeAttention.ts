// Makes the attention probabilities of an ordinary ONNX export observable: the Softmax that ends each
// attention block (the one whose output is the left operand of the probs @ V MatMul) becomes a graph
// output of shape [batch, heads, q, k]. With `float16`, a Cast to float16 of it becomes the output
// instead: ONNX Runtime then converts in native code and copies out half the bytes.
//
// The model is never decoded as a whole: modelScan walks the protobuf wire format (skipping tensor
// payloads) and the edits are spliced in with wire.rebuild, so the cost is one pass over the node list
// plus one copy of the bytes, and every field we do not touch is kept byte for byte.

import { EngineError } from '../types';
import { exposeFused, fusedAttentionOp } from './fusedAttention';
import { DT, ScannedGraph, ScannedModel, ScannedNode, allGraphs, scanModel } from './modelScan';
import { QkvExposer, type QkvLayerPlan } from './exposeQkv';
import { inlineNoPastBranch } from './inlineIf';
import { graphOutputField, nodeField } from './nodeProto';
import { MessagePatch, WireError, childPatch, insertAfter, newPatch, rebuild, stringField } from './wire';

export interface ExposedGraph {
  bytes: Uint8Array;
  /** Graph output names, one per attention Softmax, in layer order. */
  attentionOutputs: string[];
  /** With ExposeOptions.qkv: per layer, the graph outputs that capture its queries, keys and values. */
  qkv?: QkvLayerPlan[];
  /** Per attention output, in a decoder that reads `encoder_hidden_states`: self- or cross-attention. */
  attentionKinds?: AttentionKind[];
}

export interface ExposedChunks {
  /** The rewritten model as consecutive chunks (mostly views of the input); write them in order. */
  chunks: Uint8Array[];
  length: number;
  attentionOutputs: string[];
  /** External data files the model references (relative to the model file); empty for self-contained models. */
  externalDataLocations: string[];
  qkv?: QkvLayerPlan[];
  attentionKinds?: AttentionKind[];
}

/** Cross-attention's keys and values come from the encoder's output; self-attention's from the sequence itself. */
export type AttentionKind = 'self' | 'cross';

/** The graph input an encoder-decoder's decoder reads the encoder's output from (Optimum, transformers.js). */
export const ENCODER_STATES = 'encoder_hidden_states';

/**
 * Ops the probabilities may pass through between the Softmax and the probs @ V MatMul. The
 * quantize ops appear in dynamically quantized (`*_quantized.onnx`) exports, where that MatMul can
 * become a MatMulInteger or QLinearMatMul fed by quantized probabilities.
 */
const PASS_THROUGH = new Set(['Dropout', 'Cast', 'Identity', 'Where', 'DynamicQuantizeLinear', 'QuantizeLinear']);
const MATMULS = new Set(['MatMul', 'MatMulInteger', 'QLinearMatMul']);
/** `layer.3`, `layers.3`, `h.3`, `block_3`, `blocks/3` ... anywhere in a node or tensor name. */
const LAYER_RE = /(?<![A-Za-z0-9])(?:layers?|h|blocks?)[._/](\d+)(?![0-9])/i;

const isDefaultDomain = (d: string) => d === '' || d === 'ai.onnx';

/** The layer index a name carries, or null. */
export function layerIndexOf(name: string): number | null {
  const m = LAYER_RE.exec(name);
  return m ? Number(m[1]) : null;
}

export interface ExposeOptions {
  /** Output the probabilities as float16 (cast in the graph when they are computed in another type). */
  float16?: boolean;
  /** Also output what each attention is made of: queries, keys, values, head outputs, score scale and mask (exposeQkv.ts). */
  qkv?: boolean;
  /** First replace a merged decoder's cache switch (If on use_cache_branch) by its no-past branch (inlineIf.ts). */
  inlineNoPast?: boolean;
}

/** Rewrites the model so each layer's attention probabilities are graph outputs. See the file comment. */
export function exposeAttention(modelBytes: Uint8Array, modelLabel: string, options: ExposeOptions = {}): ExposedGraph {
  const { chunks, length, attentionOutputs, qkv, attentionKinds } = exposeAttentionChunks(modelBytes, modelLabel, options);
  return { bytes: Buffer.concat(chunks, length), attentionOutputs, ...(qkv ? { qkv } : {}), ...(attentionKinds ? { attentionKinds } : {}) };
}

/** exposeAttention without the final concatenation (lets callers stream a big model to disk). */
export function exposeAttentionChunks(modelBytes: Uint8Array, modelLabel: string, options: ExposeOptions = {}): ExposedChunks {
  if (options.inlineNoPast) modelBytes = inlineNoPastBranch(modelBytes, modelLabel);
  let model: ScannedModel;
  try {
    model = scanModel(modelBytes);
  } catch (err) {
    if (err instanceof WireError) {
      throw new EngineError('MODEL_CORRUPT', `${modelLabel} is not a readable ONNX model (${err.message}).`);
    }
    throw err;
  }
  rejectFusedInFunctions(model, modelLabel);

  const ctx = new Context(model, modelLabel);
  const modelPatch = newPatch();
  const graph = model.graph;
  const graphPatch = () => childPatch(modelPatch, graph.field);
  const exposures = ctx.exposeInGraph(graph, graphPatch);
  if (exposures.length === 0) {
    // Local functions (e.g. torch.onnx dynamo exports with modules kept as functions) are not searched.
    const inFunction = model.functionNodes.some((n) => n.opType === 'Softmax');
    throw new EngineError(
      'ATTENTION_UNSUPPORTED',
      `${modelLabel}: found no attention Softmax (a Softmax whose output feeds the probs @ V MatMul) and no fused attention kernel in the ONNX graph, ` +
        'so attention cannot be shown for this model.' +
        (inFunction ? ' Its Softmax nodes sit inside ONNX local functions; an export with functions inlined would work.' : ''),
    );
  }
  const existing = new Set(graph.outputs.map((o) => o.name));
  const outputs = exposures.map((e) => {
    if (options.float16 && e.elemType !== DT.FLOAT16) {
      // Right after the node that produces the probabilities: ONNX Runtime runs nodes in list
      // order where it can, so the float32 buffer is released at once instead of all layers'
      // staying alive until the end of the graph.
      const cast = ctx.freshName(`${e.name}.float16`);
      insertAfter(graphPatch(), e.producer.field, nodeField({ opType: 'Cast', inputs: [e.name], outputs: [cast], attributes: [{ name: 'to', i: DT.FLOAT16 }] }));
      graphPatch().append.push(...graphOutputField(cast, DT.FLOAT16));
      return cast;
    }
    if (!existing.has(e.name)) graphPatch().append.push(...graphOutputField(e.name, e.elemType));
    return e.name;
  });
  let qkv: QkvLayerPlan[] | undefined;
  if (options.qkv) {
    const exposer = new QkvExposer(graph, graphPatch, { label: modelLabel, freshName: (b) => ctx.freshName(b), elemTypeOf: (n, g) => ctx.elemTypeOf(n, g) });
    qkv = exposures.map((e, layer) => exposer.plan(e.producer, layer));
  }
  const { chunks, length } = rebuild(modelBytes, 0, modelBytes.length, modelPatch);
  const kinds = exposures.some((e) => e.kind === 'cross') ? { attentionKinds: exposures.map((e) => e.kind ?? 'self') } : {};
  return { chunks, length, attentionOutputs: outputs, externalDataLocations: model.externalDataLocations, ...(qkv ? { qkv } : {}), ...kinds };
}

/** Fused kernels inside ONNX local functions have no per-layer output to surface. */
function rejectFusedInFunctions(model: ScannedModel, label: string): void {
  const n = model.functionNodes.find((f) => fusedAttentionOp(f));
  if (n) {
    throw new EngineError(
      'ATTENTION_UNSUPPORTED',
      `${label} computes attention with the fused kernel ${fusedAttentionOp(n)}${n.name ? ` (node "${n.name}")` : ''} inside an ONNX local function, ` +
        'which cannot be exposed as per-layer outputs. An export with functions inlined would work.',
    );
  }
}

/** A tensor to surface from a graph, with what is needed to order and type it. */
interface Exposure {
  name: string;
  layer: number | null;
  elemType: number;
  /** The node of the enclosing graph that outputs it (the Softmax, or the If that surfaces it). */
  producer: ScannedNode;
  kind?: AttentionKind;
}

class Context {
  /** Float type to declare when inference fails: FLOAT16 for mostly-fp16 models, else FLOAT. */
  private readonly fallbackFloat: number;
  private readonly usedNames: Set<string>;

  constructor(private readonly model: ScannedModel, private readonly label: string) {
    const counts = model.initializerTypeCounts;
    this.fallbackFloat = (counts.get(DT.FLOAT16) ?? 0) > (counts.get(DT.FLOAT) ?? 0) ? DT.FLOAT16 : DT.FLOAT;
    this.usedNames = model.allNames;
  }

  /**
   * Finds the attention Softmax outputs of `graph` (recursing into If branches) and returns them in layer
   * order. For If nodes the branch outputs and If outputs are added through the patches; the caller
   * decides how the returned names leave `graph` (graph outputs or branch outputs).
   */
  exposeInGraph(graph: ScannedGraph, graphPatch: () => MessagePatch): Exposure[] {
    const consumers = consumerMap(graph);
    const found: Exposure[] = [];
    for (const node of graph.nodes) {
      if (fusedAttentionOp(node)) {
        const { name, elemType } = exposeFused(node, graph, graphPatch, { label: this.label, model: this.model, freshName: (b) => this.freshName(b), elemTypeOf: (n, g) => this.elemTypeOf(n, g) });
        found.push({ name, layer: layerIndexOf(node.name) ?? layerIndexOf(node.outputs[0]), elemType, producer: node });
        continue;
      }
      if (node.opType === 'Softmax' && isDefaultDomain(node.domain)) {
        const matmul = probsMatMul(node.outputs[0], consumers);
        if (matmul) {
          found.push({
            name: node.outputs[0],
            layer: layerIndexOf(node.name) ?? layerIndexOf(node.outputs[0]),
            elemType: this.elemTypeOf(node.outputs[0], graph),
            producer: node,
            kind: valuesFromEncoder(matmul.inputs[1], graph) ? 'cross' : 'self',
          });
        }
        continue;
      }
      if (!node.attributes.some((a) => a.graphs.length > 0)) continue;
      if (node.opType === 'If' && isDefaultDomain(node.domain)) found.push(...this.exposeThroughIf(node, graph, graphPatch));
      else this.rejectAttentionIn(node);
    }
    // Node order, unless every name carries a layer index (Array.prototype.sort is stable).
    if (found.every((e) => e.layer !== null)) found.sort((a, b) => a.layer! - b.layer!);
    return found;
  }

  /** Adds the attention found in both branches of an If as new branch outputs and new If outputs. */
  private exposeThroughIf(node: ScannedNode, graph: ScannedGraph, graphPatch: () => MessagePatch): Exposure[] {
    const thenAttr = node.attributes.find((a) => a.name === 'then_branch');
    const elseAttr = node.attributes.find((a) => a.name === 'else_branch');
    if (!thenAttr?.graphs[0] || !elseAttr?.graphs[0]) return [];
    const nodePatch = () => childPatch(graphPatch(), node.field);
    const branchPatch = (attr: typeof thenAttr) => () => childPatch(childPatch(nodePatch(), attr.field), attr.graphs[0].field);
    const thenPatch = branchPatch(thenAttr);
    const elsePatch = branchPatch(elseAttr);
    const thenEx = this.exposeInGraph(thenAttr.graphs[0], thenPatch);
    const elseEx = this.exposeInGraph(elseAttr.graphs[0], elsePatch);
    if (thenEx.length !== elseEx.length) {
      throw new EngineError(
        'ATTENTION_UNSUPPORTED',
        `${this.label}: the branches of If node "${node.name}" have different numbers of attention Softmax nodes ` +
          `(${thenEx.length} vs ${elseEx.length}), so their attention cannot be exposed consistently.`,
      );
    }
    const out: Exposure[] = [];
    thenEx.forEach((t, k) => {
      const e = elseEx[k];
      if (t.layer !== null && e.layer !== null && t.layer !== e.layer) {
        throw new EngineError(
          'ATTENTION_UNSUPPORTED',
          `${this.label}: the branches of If node "${node.name}" disagree on the layer order of their attention (${t.layer} vs ${e.layer}).`,
        );
      }
      // Branch outputs are appended after the existing ones, in the same order in both branches, and
      // the If node gains one output per pair; the If's k-th output is its branches' k-th output.
      thenPatch().append.push(...graphOutputField(t.name, t.elemType));
      elsePatch().append.push(...graphOutputField(e.name, t.elemType || e.elemType));
      const layer = t.layer ?? e.layer;
      const name = this.freshName(`attentions.${layer ?? k}`);
      nodePatch().append.push(...stringField(2, name));
      // A with-past branch reads cross-attention keys from the cache: the branch that computes them says cross.
      const kind = t.kind === 'cross' || e.kind === 'cross' ? 'cross' : 'self';
      out.push({ name, layer, elemType: t.elemType || e.elemType, producer: node, kind });
    });
    return out;
  }

  /** Attention inside a Loop/Scan body (or any non-If subgraph) has no per-layer output to surface. */
  private rejectAttentionIn(node: ScannedNode): void {
    for (const attr of node.attributes) {
      for (const sub of attr.graphs) {
        for (const g of allGraphs(sub)) {
          const consumers = consumerMap(g);
          const softmax = g.nodes.find((n) => fusedAttentionOp(n) || (n.opType === 'Softmax' && isDefaultDomain(n.domain) && feedsProbsMatMul(n.outputs[0], consumers)));
          if (softmax) {
            throw new EngineError(
              'ATTENTION_UNSUPPORTED',
              `${this.label}: attention is computed inside the "${attr.name}" subgraph of ${node.opType} node "${node.name}", ` +
                'which cannot be exposed as per-layer outputs.',
            );
          }
        }
      }
    }
  }

  freshName(base: string): string {
    let name = base;
    for (let i = 1; this.usedNames.has(name); i++) name = `${base}_${i}`;
    this.usedNames.add(name);
    return name;
  }

  /**
   * The element type of tensor `name` as seen from `graph`: declared (value_info/inputs/outputs/
   * initializers, searched outward through enclosing graphs), else inferred by walking producers back
   * (Softmax keeps its input's type, Cast sets `to`, ...), else the model's dominant float type.
   * Declaring a wrong type makes ONNX Runtime refuse the model, hence the effort: fp16 exports often
   * run Softmax in fp32 between two Casts.
   */
  elemTypeOf(name: string, graph: ScannedGraph): number {
    let cur = name;
    let scope: ScannedGraph | null = graph;
    for (let steps = 0; steps < 1_000_000 && scope; steps++) {
      let node: ScannedNode | undefined;
      let where: ScannedGraph | null = scope;
      for (; where; where = where.parent) {
        const declared = where.types.get(cur);
        if (declared) return declared;
        node = where.producers.get(cur);
        if (node || where.initializerNames.has(cur)) break;
      }
      if (!node || !where) break;
      const next = inferStep(node, cur);
      if (typeof next === 'number') return next;
      if (!next) break;
      cur = next.name;
      scope = next.graph ?? where;
    }
    return this.fallbackFloat;
  }
}

/** One step of backwards type inference: a known type, or the tensor (and graph) whose type it copies. */
function inferStep(node: ScannedNode, output: string): number | { name: string; graph?: ScannedGraph } | null {
  const attr = (n: string) => node.attributes.find((a) => a.name === n);
  const input = (i: number) => (node.inputs[i] ? { name: node.inputs[i] } : null);
  // (De)quantization ops exist in both ai.onnx and com.microsoft with the same typing rules.
  if (node.opType === 'DequantizeLinear') return input(1);
  if (node.opType === 'QuantizeLinear') return input(2) ?? DT.UINT8;
  if (!isDefaultDomain(node.domain)) {
    if (node.opType === 'DynamicQuantizeMatMul' || node.opType === 'MatMulIntegerToFloat') return input(2) ?? DT.FLOAT;
    return firstInput(node);
  }
  switch (node.opType) {
    case 'Cast': return attr('to')?.i ?? null;
    case 'CastLike': return input(1);
    case 'Constant': {
      const value = node.attributes[0];
      if (!value) return null;
      if (value.tensorType) return value.tensorType;
      if (value.name.startsWith('value_float')) return DT.FLOAT;
      if (value.name.startsWith('value_int')) return DT.INT64;
      return null;
    }
    case 'ConstantOfShape': return attr('value')?.tensorType ?? DT.FLOAT;
    case 'Shape': case 'Size': case 'NonZero': case 'ArgMax': case 'ArgMin': return DT.INT64;
    case 'Equal': case 'Less': case 'Greater': case 'LessOrEqual': case 'GreaterOrEqual':
    case 'Not': case 'And': case 'Or': case 'Xor': case 'IsNaN': case 'IsInf': return DT.BOOL;
    case 'Where': return input(1);
    case 'DynamicQuantizeLinear': return DT.UINT8;
    case 'MatMulInteger': case 'ConvInteger': return DT.INT32;
    case 'If': {
      // The k-th If output has the type of the k-th then_branch output.
      const k = node.outputs.indexOf(output);
      const branch = attr('then_branch')?.graphs[0];
      const out = branch?.outputs[k];
      return out ? (out.elemType || { name: out.name, graph: branch }) : null;
    }
    default: return firstInput(node);
  }
}

function firstInput(node: ScannedNode): { name: string } | null {
  const name = node.inputs.find((i) => i !== '');
  return name ? { name } : null;
}

type Consumers = Map<string, { node: ScannedNode; index: number }[]>;

function consumerMap(graph: ScannedGraph): Consumers {
  const map: Consumers = new Map();
  for (const node of graph.nodes) {
    node.inputs.forEach((name, index) => {
      let list = map.get(name);
      if (!list) map.set(name, (list = []));
      list.push({ node, index });
    });
  }
  return map;
}

/** Whether `tensor` reaches the left operand of a MatMul, possibly through the PASS_THROUGH ops. */
function feedsProbsMatMul(tensor: string, consumers: Consumers): boolean {
  return probsMatMul(tensor, consumers) !== null;
}

/**
 * Whether the attention's values (the probs @ V MatMul's right operand) are computed from the
 * encoder's output without passing another attention Softmax: cross-attention. A decoder's
 * self-attention values in layer > 0 also depend on the encoder's output, but only through the
 * earlier layers' attention, so the walk stops at the first Softmax. Names come from enclosing
 * graphs too (If branches read the outer graph's tensors).
 */
function valuesFromEncoder(values: string, graph: ScannedGraph): boolean {
  const producerOf = (name: string): ScannedNode | undefined => {
    for (let g: ScannedGraph | null = graph; g; g = g.parent) {
      const p = g.producers.get(name);
      if (p || g.initializerNames.has(name)) return p;
    }
    return undefined;
  };
  const queue = [values];
  const seen = new Set(queue);
  let fromEncoder = false;
  while (queue.length > 0) {
    const name = queue.pop()!;
    if (name === ENCODER_STATES) {
      fromEncoder = true;
      continue;
    }
    const node = producerOf(name);
    // Shape and Size carry no values: a reshape to the decoder's batch size is no dependence on it.
    if (!node || node.opType === 'Shape' || node.opType === 'Size') continue;
    if (node.opType === 'Softmax') return false;
    for (const i of node.inputs) {
      if (i && !seen.has(i)) {
        seen.add(i);
        queue.push(i);
      }
    }
  }
  return fromEncoder;
}

/** The MatMul whose left operand `tensor` reaches, possibly through the PASS_THROUGH ops, or null. */
function probsMatMul(tensor: string, consumers: Consumers): ScannedNode | null {
  const queue = [tensor];
  const seen = new Set(queue);
  while (queue.length > 0) {
    const name = queue.shift()!;
    for (const { node, index } of consumers.get(name) ?? []) {
      const matmul =
        (MATMULS.has(node.opType) && isDefaultDomain(node.domain)) ||
        (node.opType === 'FusedMatMul' && node.domain === 'com.microsoft' && !node.attributes.find((a) => a.name === 'transA')?.i);
      if (matmul && index === 0) return node;
      const passes = isDefaultDomain(node.domain) && PASS_THROUGH.has(node.opType) && (node.opType !== 'Where' || index > 0);
      const next = node.outputs[0];
      if (passes && next && !seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return null;
}

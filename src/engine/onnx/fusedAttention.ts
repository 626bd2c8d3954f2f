// Attention probabilities out of fused attention kernels, each by the cheapest exact route its op offers:
//   com.microsoft.GroupQueryAttention  qk_output=2: the op's 4th output holds its softmax probabilities
//   com.microsoft.MultiHeadAttention   its 4th output `qk` (scaled scores, mask and bias added) + Softmax
//   ai.onnx Attention (opset 23+)      qk_matmul_output_mode=3: the 4th output holds the probabilities
//   com.microsoft.Attention            no such output: a MultiHeadAttention beside it, fed the same
//                                      projected Q, K, V, mask and bias, gives `qk`, then a Softmax
// In every case the probabilities come from ONNX Runtime's own computation of that op, so masks,
// rotary embeddings and grouped KV heads are exactly the model's. Attributes whose effect on those
// outputs we have not verified are refused by name: nothing is shown that might be wrong.

import { EngineError } from '../types';
import type { ScannedGraph, ScannedModel, ScannedNode } from './modelScan';
import { attributeField, graphValueInfoField, nodeField, nodeOutputField, type Attribute } from './nodeProto';
import { childPatch, insertAfter, removeField, type MessagePatch } from './wire';

/** What exposing needs from the caller's rewrite context. */
export interface FusedContext {
  label: string;
  model: ScannedModel;
  freshName(base: string): string;
  elemTypeOf(name: string, graph: ScannedGraph): number;
}

export interface FusedExposure {
  /** The tensor holding the probabilities, [batch, heads, q, total]. */
  name: string;
  elemType: number;
}

const isDefaultDomain = (d: string) => d === '' || d === 'ai.onnx';

/** Fused ops that compute softmax(QK^T)V internally and offer no route to the probabilities. */
const UNEXPOSABLE_MS_OPS = new Set([
  'PackedAttention', 'PackedMultiHeadAttention', 'SparseAttention', 'DecoderMaskedMultiHeadAttention',
  'DecoderMaskedSelfAttention', 'DecoderAttention', 'QAttention', 'QOrderedAttention', 'LongformerAttention', 'PagedAttention',
]);
const EXPOSABLE_MS_OPS = new Set(['GroupQueryAttention', 'MultiHeadAttention', 'Attention']);

/** `domain:op` of a fused attention kernel, or null for any other node. */
export function fusedAttentionOp(node: { opType: string; domain: string }): string | null {
  if (node.domain === 'com.microsoft' && (UNEXPOSABLE_MS_OPS.has(node.opType) || EXPOSABLE_MS_OPS.has(node.opType))) return `com.microsoft:${node.opType}`;
  if (isDefaultDomain(node.domain) && node.opType === 'Attention') return 'ai.onnx:Attention';
  return null;
}

/**
 * Rewrites `node` (a fused attention kernel of `graph`) so its probabilities become a tensor, and
 * returns that tensor. Throws ATTENTION_UNSUPPORTED for kernels and attributes we cannot expose exactly.
 */
export function exposeFused(node: ScannedNode, graph: ScannedGraph, graphPatch: () => MessagePatch, ctx: FusedContext): FusedExposure {
  const op = fusedAttentionOp(node)!;
  const refuse = (why: string): never => {
    throw new EngineError('ATTENTION_UNSUPPORTED', `${ctx.label}: cannot show the attention of ${op}${node.name ? ` node "${node.name}"` : ''}: ${why}. Nothing is shown rather than something that might be wrong.`);
  };
  const attr = (name: string) => node.attributes.find((a) => a.name === name);
  const int = (name: string, dflt: number) => attr(name)?.i ?? dflt;
  const float = (name: string, dflt: number) => attr(name)?.f ?? dflt;
  const input = (k: number) => node.inputs[k] ?? '';
  const nodePatch = () => childPatch(graphPatch(), node.field);
  const elemType = () => ctx.elemTypeOf(input(0), graph);

  /** Sets an int attribute (replacing any value already there) and appends output 3 under a fresh name. */
  const requestOutput3 = (attribute: string, value: number): string => {
    const existing = attr(attribute);
    if (existing) removeField(nodePatch(), existing.field);
    nodePatch().append.push(...attributeField({ name: attribute, i: value }));
    const name = ctx.freshName(`${node.name || node.outputs[0]}/attention_probs`);
    for (let k = node.outputs.length; k < 3; k++) nodePatch().append.push(...nodeOutputField(''));
    nodePatch().append.push(...nodeOutputField(name));
    return name;
  };
  const hasOutput3 = () => (node.outputs[3] ?? '') !== '';

  if (node.domain === 'com.microsoft' && node.opType === 'GroupQueryAttention') {
    if (float('softcap', 0) !== 0) refuse(`attribute softcap=${float('softcap', 0)} (capped scores) is not supported`);
    if (int('local_window_size', -1) !== -1) refuse(`attribute local_window_size=${int('local_window_size', -1)} (sliding-window attention) is not supported`);
    if (int('smooth_softmax', 0) !== 0) refuse('attribute smooth_softmax=1 (an extra term in the softmax denominator) is not supported');
    if (int('sliding_window_cache', 0) !== 0) refuse('attribute sliding_window_cache=1 is not supported');
    if (input(11)) refuse('input head_sink (per-head attention sinks) is not supported');
    if (hasOutput3()) {
      if (int('qk_output', 0) !== 2) refuse('its output_qk is already used by the graph with qk_output other than 2');
      return { name: node.outputs[3], elemType: elemType() };
    }
    return { name: requestOutput3('qk_output', 2), elemType: elemType() };
  }

  if (isDefaultDomain(node.domain) && node.opType === 'Attention') {
    const opset = ctx.model.opsets.find((o) => isDefaultDomain(o.domain))?.version ?? 0;
    if (opset < 23) refuse(`the model imports ai.onnx opset ${opset}; Attention exists from opset 23`);
    if (float('softcap', 0) !== 0) refuse(`attribute softcap=${float('softcap', 0)} (capped scores) is not supported`);
    if (hasOutput3()) {
      if (int('qk_matmul_output_mode', 0) !== 3) refuse('its qk_matmul_output is already used by the graph in a mode other than 3 (after softmax)');
      return { name: node.outputs[3], elemType: elemType() };
    }
    return { name: requestOutput3('qk_matmul_output_mode', 3), elemType: elemType() };
  }

  if (node.domain === 'com.microsoft' && node.opType === 'MultiHeadAttention') {
    // `qk` holds the scaled scores with the mask and bias added; the op's softmax is the plain one.
    const scores = hasOutput3() ? node.outputs[3] : (() => {
      const name = ctx.freshName(`${node.name || node.outputs[0]}/qk`);
      for (let k = node.outputs.length; k < 3; k++) nodePatch().append.push(...nodeOutputField(''));
      nodePatch().append.push(...nodeOutputField(name));
      // `qk` has a type parameter of its own, which ONNX Runtime cannot infer: declare the query's.
      graphPatch().append.push(...graphValueInfoField(name, elemType()));
      return name;
    })();
    const probs = ctx.freshName(`${node.name || node.outputs[0]}/attention_probs`);
    insertAfter(graphPatch(), node.field, nodeField({ opType: 'Softmax', inputs: [scores], outputs: [probs], attributes: [{ name: 'axis', i: SCORES_LAST_AXIS }] }));
    return { name: probs, elemType: elemType() };
  }

  if (node.domain === 'com.microsoft' && node.opType === 'Attention') {
    if (int('do_rotary', 0) !== 0) refuse('attribute do_rotary=1 (rotary inside the op) is not supported');
    if (int('past_present_share_buffer', 0) !== 0) refuse('attribute past_present_share_buffer=1 is not supported');
    if (input(6)) refuse('input past_sequence_length is not supported');
    return besideAttention(node, graphPatch, ctx, elemType());
  }

  return refuse('this kernel computes softmax(QK^T)V internally and has no output or input that gives the probabilities; use an unfused export of this model (a plain torch.onnx / Optimum export without ONNX Runtime transformer optimizations)');
}

/** Softmax over the last axis of the 4-D scores (an explicit 3 reads the same in every opset's Softmax). */
const SCORES_LAST_AXIS = 3;

/**
 * com.microsoft.Attention has no probability output, so a MultiHeadAttention is added beside it:
 * the same input projection (MatMul + bias, split into Q, K, V as the op splits its packed weights),
 * the same mask, attention bias, head count, scale, mask value and direction; its `qk` output
 * through a Softmax gives the probabilities. The original node keeps computing the model's output.
 * The past input is left out: the engine runs whole prompts with an empty past.
 */
function besideAttention(node: ScannedNode, graphPatch: () => MessagePatch, ctx: FusedContext, elemType: number): FusedExposure {
  const base = node.name || node.outputs[0];
  const fresh = (s: string) => ctx.freshName(`${base}/${s}`);
  const attr = (name: string) => node.attributes.find((a) => a.name === name);
  const [x, weights, bias = '', mask = '', , attentionBias = ''] = node.inputs;
  const opset = ctx.model.opsets.find((o) => isDefaultDomain(o.domain))?.version ?? 0;
  const nodes: Uint8Array[] = [];
  const add = (spec: Parameters<typeof nodeField>[0]) => nodes.push(...nodeField(spec));

  const projected = fresh('qkv');
  add({ opType: 'MatMul', inputs: [x, weights], outputs: [projected] });
  let packed = projected;
  if (bias) {
    packed = fresh('qkv_bias');
    add({ opType: 'Add', inputs: [projected, bias], outputs: [packed] });
  }
  const [q, k, v] = [fresh('q'), fresh('k'), fresh('v')];
  const sizes = attr('qkv_hidden_sizes')?.ints;
  const splitAttrs: Attribute[] = [{ name: 'axis', i: 2 }];
  const splitInputs = [packed];
  if (sizes) {
    if (opset >= 13) {
      const split = fresh('split_sizes');
      add({ opType: 'Constant', inputs: [], outputs: [split], int64Value: { dims: [3], values: sizes } });
      splitInputs.push(split);
    } else splitAttrs.push({ name: 'split', ints: sizes });
  } else if (opset >= 18) splitAttrs.push({ name: 'num_outputs', i: 3 });
  add({ opType: 'Split', inputs: splitInputs, outputs: [q, k, v], attributes: splitAttrs });

  const mhaAttrs: Attribute[] = [{ name: 'num_heads', i: attr('num_heads')?.i ?? 0 }];
  if (attr('unidirectional')?.i) mhaAttrs.push({ name: 'unidirectional', i: 1 });
  const scale = attr('scale')?.f;
  if (scale !== undefined) mhaAttrs.push({ name: 'scale', f: scale });
  const maskValue = attr('mask_filter_value')?.f;
  if (maskValue !== undefined) mhaAttrs.push({ name: 'mask_filter_value', f: maskValue });
  const scores = fresh('qk');
  add({
    opType: 'MultiHeadAttention', domain: 'com.microsoft',
    inputs: [q, k, v, '', mask, attentionBias], outputs: [fresh('mha_output'), '', '', scores], attributes: mhaAttrs,
  });
  const probs = fresh('attention_probs');
  add({ opType: 'Softmax', inputs: [scores], outputs: [probs], attributes: [{ name: 'axis', i: SCORES_LAST_AXIS }] });
  insertAfter(graphPatch(), node.field, nodes);
  graphPatch().append.push(...graphValueInfoField(scores, elemType));
  return { name: probs, elemType };
}

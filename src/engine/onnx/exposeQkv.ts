// The qkv rewrite (ExposeOptions.qkv): besides each layer's attention probabilities, the tensors that
// make them become graph outputs, so the engine can show the query-key-softmax-value pipeline:
//   unfused   Q and K = the operands of the scores MatMul (the one whose output reaches the attention
//             Softmax through scale, mask and cast ops), V = the right operand of the probs @ V MatMul,
//             the head output = that MatMul's output, and every operand the scores meet on their way to
//             the Softmax (scale constants, additive masks, Where conditions and fills), recorded as
//             steps so src/engine/qkv.ts can recombine them into one scale and one mask
//   GroupQueryAttention  the op's query/key/value inputs (packed or not), its cos/sin caches and its
//             output 0 (the heads' outputs, merged); the rotary embedding is applied in TypeScript
// plus, when the graph has one, the output projection W_O (the MatMul after the head merge).
// Operands that are initializers or graph inputs leave through an Identity: ONNX Runtime folds
// initializers into the session and does not hand them out as outputs otherwise.
// Anything else between the scores and the Softmax (softcapping, a learned position bias computed in
// the graph, ...) is refused by name rather than shown wrong.

import { EngineError } from '../types';
import type { ScannedGraph, ScannedNode } from './modelScan';
import { graphOutputField, nodeField } from './nodeProto';
import type { MessagePatch } from './wire';

/** One operation the raw scores q·k pass through on their way to the Softmax, with graph outputs for its operands. */
export type ScoreStep =
  | { op: 'mul' | 'div' | 'add' | 'sub'; operand: string }
  /** Where(cond, scores, fill) keeps the scores where cond is `keepWhen`, else puts `fill`. */
  | { op: 'where'; cond: string; fill: string; keepWhen: boolean };

export interface UnfusedQkvPlan {
  kind: 'unfused';
  /** Graph outputs: the scores MatMul's operands, the probs @ V MatMul's right operand and output. */
  q: string;
  k: string;
  v: string;
  out: string;
  /** FusedMatMul transA: Q is read as [.., d, T]. */
  qTransposed: boolean;
  /** K as [.., T, d] (FusedMatMul transB) instead of the plain MatMul's Kᵀ [.., d, T]. */
  kRowMajor: boolean;
  /** FusedMatMul transB on the probs @ V MatMul: V is read as [.., d, T]. */
  vTransposed: boolean;
  /** FusedMatMul alpha of the scores MatMul (1 for MatMul). */
  alpha: number;
  steps: ScoreStep[];
  /** Graph output holding the output projection's weight [H·d, D], or null when none was recognised. */
  wo: string | null;
}

export interface GqaQkvPlan {
  kind: 'gqa';
  /** Graph outputs of the op's inputs: `query` packs Q, K and V when `key` and `value` are null. */
  query: string;
  key: string | null;
  value: string | null;
  /** Output 0: the heads' outputs merged, [B, T, H·d]. */
  out: string;
  /** cos_cache/sin_cache [max positions, rotary dims / 2], null without do_rotary. */
  cos: string | null;
  sin: string | null;
  /** The op's position_ids input when the graph feeds one; else positions are 0..T-1. */
  positions: string | null;
  interleaved: boolean;
  numHeads: number;
  kvNumHeads: number;
  /** The op's scale attribute; 0 means 1/sqrt(head size). */
  scale: number;
  wo: string | null;
}

export type QkvLayerPlan = UnfusedQkvPlan | GqaQkvPlan;

export interface QkvContext {
  label: string;
  freshName(base: string): string;
  elemTypeOf(name: string, graph: ScannedGraph): number;
}

const isDefaultDomain = (d: string) => d === '' || d === 'ai.onnx';
/** Ops between the Softmax and the probs @ V MatMul (as in exposeAttention's PASS_THROUGH, without quantization). */
const PROBS_PASS = new Set(['Dropout', 'Cast', 'Identity']);
/** Ops on the scores that change no value (the type or the shape only). */
const SCORES_PASS = new Set(['Cast', 'Identity', 'Reshape']);

/** The op as `op` (default domain) or `domain.op`. */
const opName = (n: ScannedNode) => (isDefaultDomain(n.domain) ? n.opType : `${n.domain}.${n.opType}`);

/** The inputs of `n` through which scores may flow (the other input of a binary op is its operand). */
function scoreInputs(n: ScannedNode): number[] {
  switch (opName(n)) {
    case 'Mul': case 'Add': return [0, 1];
    case 'Div': case 'Sub': return [0];
    case 'Where': return [1, 2];
    default: return SCORES_PASS.has(opName(n)) ? [0] : [];
  }
}

type Consumers = Map<string, { node: ScannedNode; index: number }[]>;

/** Adds graph outputs for the tensors a layer's qkv capture needs; one output per tensor, shared across layers. */
export class QkvExposer {
  private readonly exposed = new Map<string, string>();
  private readonly consumers: Consumers = new Map();
  private readonly graphOutputs: Set<string>;
  /** reachesScores' answers (masks are shared by all layers). */
  private readonly reaches = new Map<string, boolean>();

  constructor(private readonly graph: ScannedGraph, private readonly graphPatch: () => MessagePatch, private readonly ctx: QkvContext) {
    for (const node of graph.nodes) {
      node.inputs.forEach((name, index) => {
        const list = this.consumers.get(name);
        if (list) list.push({ node, index });
        else this.consumers.set(name, [{ node, index }]);
      });
    }
    this.graphOutputs = new Set(graph.outputs.map((o) => o.name));
  }

  /** The plan for the attention whose probabilities `node` (a Softmax or a fused kernel) produces, as layer `layer`. */
  plan(node: ScannedNode, layer: number): QkvLayerPlan {
    const refuse = (why: string): never => {
      throw new EngineError('ATTENTION_UNSUPPORTED', `${this.ctx.label}: cannot capture the queries, keys and values of layer ${layer} (node "${node.name}"): ${why}.`);
    };
    if (node.domain === 'com.microsoft' && node.opType === 'GroupQueryAttention') return this.planGqa(node, refuse);
    if (node.opType !== 'Softmax') {
      return refuse(
        node.opType === 'If'
          ? 'its attention sits inside If branches (a merged decoder); only attention in the main graph is captured'
          : `capture from ${node.domain ? `${node.domain}.` : ''}${node.opType} is not supported (only unfused attention and GroupQueryAttention are)`,
      );
    }
    return this.planUnfused(node, refuse);
  }

  private planUnfused(softmax: ScannedNode, refuse: (why: string) => never): UnfusedQkvPlan {
    const axis = softmax.attributes.find((a) => a.name === 'axis')?.i;
    if (axis !== undefined && axis !== -1 && axis !== 3) refuse(`its Softmax runs over axis ${axis}, not over the keys`);
    // Back from the Softmax to the scores MatMul, recording what the scores meet on the way.
    const steps: ScoreStep[] = [];
    let cur = softmax.inputs[0];
    let scores: ScannedNode | null = null;
    while (!scores) {
      const n = this.graph.producers.get(cur);
      if (!n) return refuse(`the Softmax input traces back to "${cur}", not to a scores MatMul`);
      const op = opName(n);
      if (op === 'MatMul' || op === 'com.microsoft.FusedMatMul') {
        scores = n;
        break;
      }
      const carriers = scoreInputs(n).filter((k) => this.reachesScores(n.inputs[k], 64));
      if (carriers.length > 1) return refuse(`both inputs of ${op} node "${n.name}" carry scores`);
      if (carriers.length === 0) {
        // Name the op in the way: the one just before, when the scores reach it (a Tanh softcap, ...).
        const before = scoreInputs(n).map((k) => this.graph.producers.get(n.inputs[k])).find((p) => p && p.inputs.some((i) => this.reachesScores(i, 64)));
        const odd = before ?? n;
        return refuse(`the scores pass through ${opName(odd)} node "${odd.name}" before the Softmax (only scaling, additive masks, Where masks and casts are understood)`);
      }
      const k = carriers[0];
      if (op === 'Mul' || op === 'Add') steps.push({ op: op === 'Mul' ? 'mul' : 'add', operand: this.expose(n.inputs[1 - k]) });
      else if (op === 'Div' || op === 'Sub') steps.push({ op: op === 'Div' ? 'div' : 'sub', operand: this.expose(n.inputs[1]) });
      else if (op === 'Where') steps.push({ op: 'where', cond: this.expose(n.inputs[0]), fill: this.expose(n.inputs[k === 1 ? 2 : 1]), keepWhen: k === 1 });
      cur = n.inputs[k];
    }
    steps.reverse();

    const probs = this.probsMatMul(softmax.outputs[0]);
    if (!probs) return refuse('its probabilities reach no probs @ V MatMul in floating point');
    const attr = (n: ScannedNode, name: string) => n.attributes.find((a) => a.name === name);
    for (const n of [scores, probs]) {
      if (attr(n, 'transBatchA')?.i || attr(n, 'transBatchB')?.i) refuse(`FusedMatMul node "${n.name}" transposes batch dimensions`);
    }
    return {
      kind: 'unfused',
      q: this.expose(scores.inputs[0]),
      k: this.expose(scores.inputs[1]),
      v: this.expose(probs.inputs[1]),
      out: this.expose(probs.outputs[0]),
      qTransposed: !!attr(scores, 'transA')?.i,
      kRowMajor: !!attr(scores, 'transB')?.i,
      vTransposed: !!attr(probs, 'transB')?.i,
      alpha: attr(scores, 'alpha')?.f ?? 1,
      steps,
      wo: this.outputProjection(probs.outputs[0], true),
    };
  }

  /** Whether `tensor` is (within `depth` score ops) the output of a MatMul: tells scores from masks and scales. */
  private reachesScores(tensor: string, depth: number): boolean {
    const known = this.reaches.get(tensor);
    if (known !== undefined) return known;
    const n = this.graph.producers.get(tensor);
    const op = n ? opName(n) : '';
    const found = !!n && depth > 0 && (op === 'MatMul' || op === 'com.microsoft.FusedMatMul' || scoreInputs(n).some((k) => this.reachesScores(n.inputs[k], depth - 1)));
    this.reaches.set(tensor, found);
    return found;
  }

  private planGqa(node: ScannedNode, refuse: (why: string) => never): GqaQkvPlan {
    const attr = (name: string) => node.attributes.find((a) => a.name === name);
    const input = (k: number) => node.inputs[k] ?? '';
    if (input(10)) refuse('its attention_bias input (a score bias) is not supported');
    const rotary = !!attr('do_rotary')?.i;
    if (rotary && (!input(7) || !input(8))) refuse('do_rotary=1 without cos_cache and sin_cache inputs');
    const packed = !input(1);
    if (packed !== !input(2)) refuse('it has a key input without a value input');
    return {
      kind: 'gqa',
      query: this.expose(input(0)),
      key: packed ? null : this.expose(input(1)),
      value: packed ? null : this.expose(input(2)),
      out: this.expose(node.outputs[0]),
      cos: rotary ? this.expose(input(7)) : null,
      sin: rotary ? this.expose(input(8)) : null,
      positions: rotary && input(9) ? this.expose(input(9)) : null,
      interleaved: !!attr('rotary_interleaved')?.i,
      numHeads: attr('num_heads')?.i ?? 0,
      kvNumHeads: attr('kv_num_heads')?.i ?? 0,
      scale: attr('scale')?.f ?? 0,
      wo: this.outputProjection(node.outputs[0], false),
    };
  }

  /** The probs @ V MatMul the Softmax output reaches as left operand, through the PROBS_PASS ops. */
  private probsMatMul(tensor: string): ScannedNode | null {
    const queue = [tensor];
    const seen = new Set(queue);
    while (queue.length > 0) {
      const name = queue.shift()!;
      for (const { node, index } of this.consumers.get(name) ?? []) {
        const isMatMul = (node.opType === 'MatMul' && isDefaultDomain(node.domain)) || (node.opType === 'FusedMatMul' && node.domain === 'com.microsoft');
        if (isMatMul && index === 0 && !node.attributes.find((a) => a.name === 'transA')?.i) return node;
        const next = node.outputs[0];
        if (isDefaultDomain(node.domain) && PROBS_PASS.has(node.opType) && next && !seen.has(next)) {
          seen.add(next);
          queue.push(next);
        }
      }
    }
    return null;
  }

  /**
   * The weight of the output projection applied to the heads' outputs, exposed, or null. Unfused heads
   * ([B, H, T, d]) must first be merged head-major: Transpose(0, 2, 1, 3) then Reshape to [B, T, H·d];
   * GroupQueryAttention's output is already merged. Rows h·d..(h+1)·d of the weight then belong to head h.
   */
  private outputProjection(heads: string, unmerged: boolean): string | null {
    let cur = heads;
    let stage = unmerged ? 0 : 2; // 0: expect Transpose, 1: expect Reshape, 2: expect the MatMul
    for (let hops = 0; hops < 3; hops++) {
      const uses = (this.consumers.get(cur) ?? []).filter(({ node }) => isDefaultDomain(node.domain) && node.opType !== 'Shape');
      if (uses.length !== 1 || uses[0].index !== 0) return null;
      const n = uses[0].node;
      const perm = n.attributes.find((a) => a.name === 'perm')?.ints;
      if (stage === 0 && n.opType === 'Transpose' && perm?.join() === '0,2,1,3') stage = 1;
      else if (stage === 1 && n.opType === 'Reshape') stage = 2;
      else if (stage === 2 && n.opType === 'MatMul' && n.inputs[1]) return this.expose(n.inputs[1]);
      else return null;
      cur = n.outputs[0];
    }
    return null;
  }

  /** A graph output holding tensor `name`: itself when a node of the graph produces it, else an Identity of it. */
  private expose(name: string): string {
    const known = this.exposed.get(name);
    if (known) return known;
    const elemType = this.ctx.elemTypeOf(name, this.graph);
    let out = name;
    if (!this.graph.producers.has(name)) {
      out = this.ctx.freshName(`${name}.qkv`);
      this.graphPatch().append.push(...nodeField({ opType: 'Identity', inputs: [name], outputs: [out] }));
      this.graphPatch().append.push(...graphOutputField(out, elemType));
    } else if (!this.graphOutputs.has(name)) {
      this.graphPatch().append.push(...graphOutputField(name, elemType));
    }
    this.exposed.set(name, out);
    return out;
  }
}

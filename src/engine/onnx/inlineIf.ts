// Turns an Optimum "merged" decoder (decoder_model_merged.onnx: one If on `use_cache_branch`, the
// with-past graph in then_branch, the no-past graph in else_branch) into a plain no-cache decoder:
// the no-past branch's nodes replace the If in the main graph. The attention exposure then works on
// one graph, where self- and cross-attention can be told apart by where their keys come from, and
// the session needs no empty past tensors or branch flag.
//
// Splices wire bytes like exposeAttention: the branch's nodes, initializers and value_info are copied
// byte for byte; nothing else of the model is re-encoded.

import { EngineError } from '../types';
import { ScannedGraph, ScannedNode, allGraphs, scanModel } from './modelScan';
import { nodeField } from './nodeProto';
import { WireError, WT_LEN, childPatch, fields, insertAfter, newPatch, readString, rebuild, removeField } from './wire';

// GraphProto / ValueInfoProto field numbers (onnx.proto).
const GRAPH = { node: 1, initializer: 5, input: 11, valueInfo: 13, sparseInitializer: 15 } as const;
const VALUE_INFO_NAME = 1;

const isDefaultDomain = (d: string) => d === '' || d === 'ai.onnx';

/** Names a graph (and the subgraphs inside it) reads. */
function namesRead(graph: ScannedGraph): Set<string> {
  const used = new Set<string>();
  for (const g of allGraphs(graph)) for (const n of g.nodes) for (const i of n.inputs) if (i) used.add(i);
  return used;
}

/**
 * The If nodes of the main graph that switch on a graph input (Optimum's `use_cache_branch`), each
 * with the branch that runs without a cache: the one that reads no `past_*` input (else_branch when
 * both or neither do, as Optimum writes it).
 */
function cacheSwitches(graph: ScannedGraph): { node: ScannedNode; branch: ScannedGraph }[] {
  const inputs = new Set(graph.inputs.map((i) => i.name));
  const out: { node: ScannedNode; branch: ScannedGraph }[] = [];
  for (const node of graph.nodes) {
    if (node.opType !== 'If' || !isDefaultDomain(node.domain) || !inputs.has(node.inputs[0])) continue;
    const thenG = node.attributes.find((a) => a.name === 'then_branch')?.graphs[0];
    const elseG = node.attributes.find((a) => a.name === 'else_branch')?.graphs[0];
    if (!thenG || !elseG) continue;
    const readsPast = (g: ScannedGraph) => [...namesRead(g)].some((n) => inputs.has(n) && n.startsWith('past_'));
    out.push({ node, branch: readsPast(elseG) && !readsPast(thenG) ? thenG : elseG });
  }
  return out;
}

/** Whether the model has a cache switch inlineNoPastBranch would remove. */
export function hasCacheSwitch(modelBytes: Uint8Array): boolean {
  try {
    return cacheSwitches(scanModel(modelBytes).graph).length > 0;
  } catch {
    return false;
  }
}

/**
 * Returns the model with every cache-switch If replaced by its no-past branch, and the graph inputs
 * nothing reads any more (the switch, the past key/values) removed. A model without one is returned as is.
 */
export function inlineNoPastBranch(modelBytes: Uint8Array, modelLabel: string): Uint8Array {
  let model;
  try {
    model = scanModel(modelBytes);
  } catch (err) {
    if (err instanceof WireError) throw new EngineError('MODEL_CORRUPT', `${modelLabel} is not a readable ONNX model (${err.message}).`);
    throw err;
  }
  const graph = model.graph;
  const switches = cacheSwitches(graph);
  if (switches.length === 0) return modelBytes;

  const buf = modelBytes;
  const modelPatch = newPatch();
  const graphPatch = childPatch(modelPatch, graph.field);
  const dropped = new Set(switches.map((s) => s.node));
  const used = new Set<string>();
  for (const n of graph.nodes) {
    if (dropped.has(n)) continue;
    for (const i of n.inputs) if (i) used.add(i);
    for (const a of n.attributes) for (const g of a.graphs) for (const name of namesRead(g)) used.add(name);
  }
  for (const o of graph.outputs) used.add(o.name);

  for (const { node, branch } of switches) {
    for (const name of namesRead(branch)) used.add(name);
    const copied: Uint8Array[] = [];
    for (const f of fields(buf, branch.field.dataStart, branch.field.end)) {
      if (f.wt !== WT_LEN) continue;
      const bytes = buf.subarray(f.tagStart, f.end);
      // Same field numbers in the main graph: nodes go where the If was (keeping the order
      // topological), initializers and value_info anywhere.
      if (f.no === GRAPH.node) copied.push(bytes);
      else if (f.no === GRAPH.initializer || f.no === GRAPH.sparseInitializer || f.no === GRAPH.valueInfo) graphPatch.append.push(bytes);
    }
    // The If's k-th output is the branch's k-th output.
    branch.outputs.forEach((o, k) => {
      const target = node.outputs[k];
      if (target && target !== o.name) copied.push(...nodeField({ opType: 'Identity', inputs: [o.name], outputs: [target], name: `${target}/inlined` }));
    });
    removeField(graphPatch, node.field);
    insertAfter(graphPatch, node.field, copied);
  }

  // Inputs only the dropped branch or the switch read.
  for (const f of fields(buf, graph.field.dataStart, graph.field.end)) {
    if (f.no !== GRAPH.input || f.wt !== WT_LEN) continue;
    let name = '';
    for (const g of fields(buf, f.dataStart, f.end)) if (g.no === VALUE_INFO_NAME && g.wt === WT_LEN) name = readString(buf, g);
    if (!used.has(name)) removeField(graphPatch, f);
  }
  const { chunks, length } = rebuild(buf, 0, buf.length, modelPatch);
  return Buffer.concat(chunks, length);
}

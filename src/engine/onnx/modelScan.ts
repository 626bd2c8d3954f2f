// A structural scan of an ONNX ModelProto straight from its wire bytes: graphs, nodes, attributes with
// subgraphs, declared types, initializer types. Byte positions are kept so exposeAttention can splice
// edits in without re-encoding. Tensor payloads are skipped by length and never copied.

import { WT_I32, WT_LEN, WT_VARINT, WireError, WireField, fields, readString, readVarint } from './wire';

/** ONNX TensorProto.DataType values used here. */
export const DT = { UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10, DOUBLE: 11, BFLOAT16: 16 } as const;

// Field numbers from onnx.proto.
const MODEL = { graph: 7, opsetImport: 8, functions: 25 } as const;
const OPSET = { domain: 1, version: 2 } as const;
const GRAPH = { node: 1, name: 2, initializer: 5, input: 11, output: 12, valueInfo: 13, sparseInitializer: 15 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const ATTR = { name: 1, f: 2, i: 3, s: 4, t: 5, g: 6, ints: 8, graphs: 11 } as const;
const TENSOR = { dataType: 2, name: 8, externalData: 13, dataLocation: 14 } as const;
const SPARSE_TENSOR = { values: 1 } as const;
const STRING_ENTRY = { key: 1, value: 2 } as const;
const VALUE_INFO = { name: 1, type: 2 } as const;
const TYPE = { tensorType: 1 } as const;
const TENSOR_TYPE = { elemType: 1 } as const;
const FUNCTION = { node: 7 } as const;

export interface ScannedAttribute {
  field: WireField;
  name: string;
  /** The `i` value (signed int64, exact when |i| < 2^53). */
  i?: number;
  /** The `f` value (float32). */
  f?: number;
  /** The `s` value, as UTF-8 text. */
  s?: string;
  /** The `ints` values (non-negative ones exact; enough for sizes). */
  ints?: number[];
  /** data_type of the `t` tensor (Constant/ConstantOfShape values). */
  tensorType?: number;
  /** Subgraphs held by `g` (one) or `graphs` (many), with the field that holds each. */
  graphs: ScannedGraph[];
}

export interface ScannedNode {
  field: WireField;
  /** Position in its graph's node list. */
  index: number;
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: ScannedAttribute[];
}

export interface NamedType {
  name: string;
  /** TensorProto.DataType of a tensor type; 0 when absent or not a tensor. */
  elemType: number;
}

export interface ScannedGraph {
  /** The LEN field that holds this GraphProto (ModelProto.graph or AttributeProto.g/graphs). */
  field: WireField;
  name: string;
  parent: ScannedGraph | null;
  /** The node (If, Loop, Scan, ...) whose attribute holds this graph; null for the main graph. */
  owner: ScannedNode | null;
  /** The attribute name on `owner` (then_branch, else_branch, body, ...). */
  ownerAttribute: string;
  nodes: ScannedNode[];
  inputs: NamedType[];
  outputs: NamedType[];
  /** Declared element types: value_info, inputs, outputs and initializers of this graph. */
  types: Map<string, number>;
  initializerNames: Set<string>;
  /** Tensor name -> the node of this graph that produces it. */
  producers: Map<string, ScannedNode>;
}

export interface ScannedModel {
  buf: Uint8Array;
  graph: ScannedGraph;
  opsets: { domain: string; version: number }[];
  /** Nodes of model-local functions (only looked at for fused-kernel detection). */
  functionNodes: { opType: string; domain: string; name: string }[];
  /** Initializer counts by data type over all graphs (used to guess a float type). */
  initializerTypeCounts: Map<number, number>;
  /** External data files referenced by initializers (`location` entries, relative to the model file). */
  externalDataLocations: string[];
  /** Every tensor name seen anywhere in the model (to make fresh names unique). */
  allNames: Set<string>;
}

/** Reads a varint field as a signed int64 (two's complement, as protobuf encodes negative int64). */
function signedVarint(buf: Uint8Array, f: WireField): number {
  let v = 0n;
  let shift = 0n;
  for (let p = f.tagEnd; p < f.end; p++) {
    v |= BigInt(buf[p] & 0x7f) << shift;
    shift += 7n;
  }
  return Number(BigInt.asIntN(64, v));
}

/** Element type of a TypeProto's tensor_type, 0 when not a tensor or unset. */
function typeProtoElemType(buf: Uint8Array, start: number, end: number): number {
  for (const f of fields(buf, start, end)) {
    if (f.no === TYPE.tensorType && f.wt === WT_LEN) {
      for (const g of fields(buf, f.dataStart, f.end)) {
        if (g.no === TENSOR_TYPE.elemType && g.wt === WT_VARINT) return g.varint;
      }
    }
  }
  return 0;
}

function scanValueInfo(buf: Uint8Array, f: WireField): NamedType {
  let name = '';
  let elemType = 0;
  for (const g of fields(buf, f.dataStart, f.end)) {
    if (g.no === VALUE_INFO.name && g.wt === WT_LEN) name = readString(buf, g);
    else if (g.no === VALUE_INFO.type && g.wt === WT_LEN) elemType = typeProtoElemType(buf, g.dataStart, g.end);
  }
  return { name, elemType };
}

interface ScanState {
  buf: Uint8Array;
  initializerTypeCounts: Map<number, number>;
  externalDataLocations: Set<string>;
  allNames: Set<string>;
}

/** Reads the small fields of a TensorProto (name, data type, external data), skipping its payload. */
function scanTensor(st: ScanState, f: WireField): { name: string; dataType: number } {
  const { buf } = st;
  let name = '';
  let dataType = 0;
  let external = false;
  let location = '';
  for (const g of fields(buf, f.dataStart, f.end)) {
    if (g.no === TENSOR.name && g.wt === WT_LEN) name = readString(buf, g);
    else if (g.no === TENSOR.dataType && g.wt === WT_VARINT) dataType = g.varint;
    else if (g.no === TENSOR.dataLocation && g.wt === WT_VARINT) external = g.varint === 1;
    else if (g.no === TENSOR.externalData && g.wt === WT_LEN) {
      let key = '';
      let value = '';
      for (const h of fields(buf, g.dataStart, g.end)) {
        if (h.no === STRING_ENTRY.key && h.wt === WT_LEN) key = readString(buf, h);
        else if (h.no === STRING_ENTRY.value && h.wt === WT_LEN) value = readString(buf, h);
      }
      if (key === 'location') location = value;
    }
  }
  if (external && location) st.externalDataLocations.add(location);
  return { name, dataType };
}

function scanAttribute(st: ScanState, f: WireField, owner: ScannedNode, graph: ScannedGraph): ScannedAttribute {
  const { buf } = st;
  const attr: ScannedAttribute = { field: f, name: '', graphs: [] };
  const graphFields: WireField[] = [];
  for (const g of fields(buf, f.dataStart, f.end)) {
    if (g.no === ATTR.name && g.wt === WT_LEN) attr.name = readString(buf, g);
    else if (g.no === ATTR.i && g.wt === WT_VARINT) attr.i = signedVarint(buf, g);
    else if (g.no === ATTR.f && g.wt === WT_I32) attr.f = new DataView(buf.buffer, buf.byteOffset + g.tagEnd, 4).getFloat32(0, true);
    else if (g.no === ATTR.s && g.wt === WT_LEN) attr.s = readString(buf, g);
    else if (g.no === ATTR.ints && g.wt === WT_VARINT) (attr.ints ??= []).push(signedVarint(buf, g));
    else if (g.no === ATTR.ints && g.wt === WT_LEN) {
      // Packed repeated int64.
      for (let p = g.dataStart; p < g.end; ) {
        const [v, next] = readVarint(buf, p, g.end);
        (attr.ints ??= []).push(v);
        p = next;
      }
    }
    else if (g.no === ATTR.t && g.wt === WT_LEN) attr.tensorType = scanTensor(st, g).dataType;
    else if ((g.no === ATTR.g || g.no === ATTR.graphs) && g.wt === WT_LEN) graphFields.push(g);
  }
  // Subgraphs are scanned after the attribute name is known (the name may come after `g` on the wire).
  for (const g of graphFields) attr.graphs.push(scanGraph(st, g, graph, owner, attr.name));
  return attr;
}

function scanNode(st: ScanState, f: WireField, index: number, graph: ScannedGraph): ScannedNode {
  const { buf } = st;
  const node: ScannedNode = { field: f, index, name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: [] };
  const attrFields: WireField[] = [];
  for (const g of fields(buf, f.dataStart, f.end)) {
    if (g.wt !== WT_LEN) continue;
    switch (g.no) {
      case NODE.input: node.inputs.push(readString(buf, g)); break;
      case NODE.output: node.outputs.push(readString(buf, g)); break;
      case NODE.name: node.name = readString(buf, g); break;
      case NODE.opType: node.opType = readString(buf, g); break;
      case NODE.domain: node.domain = readString(buf, g); break;
      case NODE.attribute: attrFields.push(g); break;
    }
  }
  for (const g of attrFields) node.attributes.push(scanAttribute(st, g, node, graph));
  for (const n of node.inputs) st.allNames.add(n);
  for (const n of node.outputs) st.allNames.add(n);
  return node;
}

function scanGraph(st: ScanState, f: WireField, parent: ScannedGraph | null, owner: ScannedNode | null, ownerAttribute: string): ScannedGraph {
  const { buf } = st;
  const graph: ScannedGraph = {
    field: f, name: '', parent, owner, ownerAttribute, nodes: [], inputs: [], outputs: [],
    types: new Map(), initializerNames: new Set(), producers: new Map(),
  };
  const valueInfos: NamedType[] = [];
  for (const g of fields(buf, f.dataStart, f.end)) {
    if (g.wt !== WT_LEN) continue;
    switch (g.no) {
      case GRAPH.node: graph.nodes.push(scanNode(st, g, graph.nodes.length, graph)); break;
      case GRAPH.name: graph.name = readString(buf, g); break;
      case GRAPH.input: graph.inputs.push(scanValueInfo(buf, g)); break;
      case GRAPH.output: graph.outputs.push(scanValueInfo(buf, g)); break;
      case GRAPH.valueInfo: valueInfos.push(scanValueInfo(buf, g)); break;
      case GRAPH.initializer:
      case GRAPH.sparseInitializer: {
        let t = { name: '', dataType: 0 };
        if (g.no === GRAPH.initializer) t = scanTensor(st, g);
        else for (const h of fields(buf, g.dataStart, g.end)) if (h.no === SPARSE_TENSOR.values && h.wt === WT_LEN) t = scanTensor(st, h);
        graph.initializerNames.add(t.name);
        if (t.dataType) graph.types.set(t.name, t.dataType);
        st.initializerTypeCounts.set(t.dataType, (st.initializerTypeCounts.get(t.dataType) ?? 0) + 1);
        st.allNames.add(t.name);
        break;
      }
    }
  }
  // Declared types: value_info first, then inputs/outputs override (they are authoritative).
  for (const v of [...valueInfos, ...graph.inputs, ...graph.outputs]) {
    st.allNames.add(v.name);
    if (v.elemType) graph.types.set(v.name, v.elemType);
  }
  for (const n of graph.nodes) for (const o of n.outputs) if (o) graph.producers.set(o, n);
  return graph;
}

/** Scans a serialized ModelProto. Throws WireError when the bytes are not a protobuf message or hold no graph. */
export function scanModel(buf: Uint8Array): ScannedModel {
  const st: ScanState = { buf, initializerTypeCounts: new Map(), externalDataLocations: new Set(), allNames: new Set() };
  const graphFields: WireField[] = [];
  const opsets: { domain: string; version: number }[] = [];
  const functionNodes: { opType: string; domain: string; name: string }[] = [];
  for (const f of fields(buf, 0, buf.length)) {
    if (f.no === MODEL.graph && f.wt === WT_LEN) graphFields.push(f);
    else if (f.no === MODEL.opsetImport && f.wt === WT_LEN) {
      let domain = '';
      let version = 0;
      for (const g of fields(buf, f.dataStart, f.end)) {
        if (g.no === OPSET.domain && g.wt === WT_LEN) domain = readString(buf, g);
        else if (g.no === OPSET.version && g.wt === WT_VARINT) version = g.varint;
      }
      opsets.push({ domain, version });
    } else if (f.no === MODEL.functions && f.wt === WT_LEN) {
      for (const g of fields(buf, f.dataStart, f.end)) {
        if (g.no !== FUNCTION.node || g.wt !== WT_LEN) continue;
        let opType = '';
        let domain = '';
        let name = '';
        for (const h of fields(buf, g.dataStart, g.end)) {
          if (h.wt !== WT_LEN) continue;
          if (h.no === NODE.opType) opType = readString(buf, h);
          else if (h.no === NODE.domain) domain = readString(buf, h);
          else if (h.no === NODE.name) name = readString(buf, h);
        }
        functionNodes.push({ opType, domain, name });
      }
    }
  }
  if (graphFields.length === 0) throw new WireError('no graph in the model', 0);
  // Protobuf would merge several `graph` occurrences into one; no exporter writes that, and splicing
  // edits into a merged graph is not worth supporting.
  if (graphFields.length > 1) throw new WireError(`the model has ${graphFields.length} separate graph fields`, graphFields[1].tagStart);
  const graph = scanGraph(st, graphFields[0], null, null, '');
  if (graph.nodes.length === 0) throw new WireError('the graph has no nodes', graphFields[0].tagStart);
  return {
    buf, graph, opsets, functionNodes,
    initializerTypeCounts: st.initializerTypeCounts,
    externalDataLocations: [...st.externalDataLocations],
    allNames: st.allNames,
  };
}

/** All graphs of the model, depth first (main graph first). */
export function* allGraphs(graph: ScannedGraph): Generator<ScannedGraph> {
  yield graph;
  for (const n of graph.nodes) for (const a of n.attributes) for (const g of a.graphs) yield* allGraphs(g);
}

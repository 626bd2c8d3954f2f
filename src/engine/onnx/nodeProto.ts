// Encoders for the few ONNX messages the rewrite adds (nodes, attributes, graph outputs), written
// straight to protobuf wire bytes so they can be spliced into a model with wire.rebuild.

import { encodeVarint, lenField, stringField } from './wire';

// Field numbers and enum values from onnx.proto.
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const ATTR = { name: 1, f: 2, i: 3, ints: 8, type: 20 } as const;
const ATTR_TYPE = { FLOAT: 1, INT: 2, INTS: 7 } as const;
const TENSOR = { dims: 1, dataType: 2, rawData: 9 } as const;
const ATTR_T = 5;
const ATTR_TYPE_TENSOR = 4;
const GRAPH_NODE = 1;
const GRAPH_OUTPUT = 12;
const GRAPH_VALUE_INFO = 13;

const concat = (parts: Uint8Array[]) => Buffer.concat(parts);
const varintField = (no: number, v: number) => [encodeVarint(no * 8), encodeVarint(v)];

/** An AttributeProto. int64 values must be non-negative here (all the rewrite writes). */
export type Attribute = { name: string; i: number } | { name: string; f: number } | { name: string; ints: number[] };

export function attributeBytes(a: Attribute): Uint8Array {
  const parts: Uint8Array[] = [...stringField(ATTR.name, a.name)];
  if ('i' in a) parts.push(...varintField(ATTR.i, a.i), ...varintField(ATTR.type, ATTR_TYPE.INT));
  else if ('f' in a) {
    const f = Buffer.alloc(4);
    f.writeFloatLE(a.f);
    parts.push(encodeVarint(ATTR.f * 8 + 5), f, ...varintField(ATTR.type, ATTR_TYPE.FLOAT));
  } else {
    for (const v of a.ints) parts.push(...varintField(ATTR.ints, v));
    parts.push(...varintField(ATTR.type, ATTR_TYPE.INTS));
  }
  return concat(parts);
}

/** An AttributeProto as a NodeProto.attribute occurrence. */
export function attributeField(a: Attribute): Uint8Array[] {
  return lenField(NODE.attribute, attributeBytes(a));
}

/** A tensor name as a NodeProto.output occurrence. */
export function nodeOutputField(name: string): Uint8Array[] {
  return stringField(NODE.output, name);
}

export interface NodeSpec {
  opType: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attributes?: Attribute[];
  /** A `value` tensor attribute (for Constant): little-endian int64 values of the given dims. */
  int64Value?: { dims: number[]; values: number[] };
}

/** A NodeProto as a GraphProto.node occurrence. */
export function nodeField(spec: NodeSpec): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (const i of spec.inputs) parts.push(...stringField(NODE.input, i));
  for (const o of spec.outputs) parts.push(...stringField(NODE.output, o));
  parts.push(...stringField(NODE.name, spec.name ?? spec.outputs[0]), ...stringField(NODE.opType, spec.opType));
  for (const a of spec.attributes ?? []) parts.push(...attributeField(a));
  if (spec.int64Value) {
    const raw = Buffer.alloc(8 * spec.int64Value.values.length);
    spec.int64Value.values.forEach((v, k) => raw.writeBigInt64LE(BigInt(v), 8 * k));
    const tensor = concat([...spec.int64Value.dims.flatMap((d) => varintField(TENSOR.dims, d)), ...varintField(TENSOR.dataType, 7), ...lenField(TENSOR.rawData, raw)]);
    const attr = concat([...stringField(ATTR.name, 'value'), ...lenField(ATTR_T, tensor), ...varintField(ATTR.type, ATTR_TYPE_TENSOR)]);
    parts.push(...lenField(NODE.attribute, attr));
  }
  if (spec.domain) parts.push(...stringField(NODE.domain, spec.domain));
  return lenField(GRAPH_NODE, concat(parts));
}

/** ValueInfoProto { name, type { tensor_type { elem_type } } } as a GraphProto.output occurrence. */
export function graphOutputField(name: string, elemType: number): Uint8Array[] {
  return lenField(GRAPH_OUTPUT, valueInfoBytes(name, elemType));
}

/** The same as a GraphProto.value_info occurrence: declares a tensor type ONNX Runtime cannot infer. */
export function graphValueInfoField(name: string, elemType: number): Uint8Array[] {
  return lenField(GRAPH_VALUE_INFO, valueInfoBytes(name, elemType));
}

function valueInfoBytes(name: string, elemType: number): Uint8Array {
  const tensorType = concat(elemType ? varintField(1, elemType) : []);
  const typeProto = concat(lenField(1, tensorType));
  return concat([...stringField(1, name), ...lenField(2, typeProto)]);
}

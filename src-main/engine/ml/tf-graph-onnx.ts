// Converts a TensorFlow.js graph model (model.json of format 'graph-model' + its weight shard, as
// the converter writes a frozen TensorFlow graph) into an ONNX graph for ONNX Runtime: the nodes
// from the input placeholder up to the named output nodes, for the ops a MobileNet-style
// convolutional network uses. Ops outside that set, and attributes the converter does not
// reproduce exactly, are refused with the node's name rather than converted approximately.
//
// Layout: as in keras-onnx.ts, the NHWC input is transposed to NCHW once and every tensor after
// is NCHW; outputs stay NCHW (the caller knows their layout). Shapes are tracked at conversion
// time for the input size asked for, so 'SAME' padding becomes explicit pads the way TensorFlow
// pads (the odd pixel at the bottom/right) and a ResizeBilinear's fixed target size becomes a
// scale factor.
import type * as TF from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import type { onnx as P } from 'onnx-proto';
import { decodeKerasWeights, GraphBuilder } from './keras-onnx.ts';

const { onnx } = onnxProto;

/** Bumped whenever the converter's output changes, so files converted before are rebuilt. */
export const TF_GRAPH_ONNX_CONVERTER_VERSION = 1;

export class GraphConversionError extends Error {}

interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, { i?: string; f?: number; b?: boolean; s?: string; list?: { i?: string[]; s?: string[] }; type?: string }>;
}

/** A converted tensor: its ONNX name and NCHW shape without the batch ([C, H, W]), or a constant. */
interface Value {
  tensor: string;
  shape: number[];
}

export interface TfGraphToOnnxOptions {
  /** Output nodes of the TF graph, converted as graph outputs under the same names with '/' as '_'. */
  outputs: string[];
  /** Input spatial size (square); default: the placeholder's. */
  inputSize?: number;
  /** Channels to keep of an output (a Gather on the channel axis), by output node name. */
  keepChannels?: Record<string, number[]>;
  docString?: string;
}

export interface TfGraphConversion {
  bytes: Uint8Array;
  inputName: string;
  /** Output names in the order asked for, with their NCHW shapes without the batch. */
  outputs: { name: string; shape: number[] }[];
  ops: Record<string, number>;
  nodes: number;
}

function fail(node: GraphNode | string, why: string): never {
  const name = typeof node === 'string' ? node : `${node.name} (${node.op})`;
  throw new GraphConversionError(`cannot convert node ${name} to ONNX: ${why}`);
}

const ints = (n: GraphNode, key: string): number[] => (n.attr?.[key]?.list?.i ?? []).map(Number);
const str = (n: GraphNode, key: string): string => {
  const s = n.attr?.[key]?.s;
  return s ? Buffer.from(s, 'base64').toString() : '';
};
const strs = (n: GraphNode, key: string): string[] => (n.attr?.[key]?.list?.s ?? []).map((s) => Buffer.from(s, 'base64').toString());
/** The output name an ONNX graph gets for a TF node name. */
export const onnxName = (tfName: string): string => tfName.replace(/[^A-Za-z0-9_]/g, '_');

/** TensorFlow's padding for one axis: [before, after, output size]. */
function padAxis(size: number, k: number, stride: number, mode: string, node: GraphNode): [number, number, number] {
  if (mode === 'VALID') return [0, 0, Math.floor((size - k) / stride) + 1];
  if (mode !== 'SAME') fail(node, `padding ${mode}`);
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + k - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2), out];
}

/** Writes a node with string attributes (GraphBuilder.node takes numbers only). */
function nodeWithStrings(g: GraphBuilder, op: string, inputs: string[], output: string, attrs: Record<string, string>): string {
  const out = g.unique(output);
  const attribute: P.IAttributeProto[] = Object.entries(attrs).map(([name, v]) => ({
    name,
    type: onnx.AttributeProto.AttributeType.STRING,
    s: Buffer.from(v),
  }));
  g.nodes.push({ opType: op, input: inputs, output: [out], name: out, attribute });
  return out;
}

/**
 * Converts the graph model `artifacts` (modelTopology = the GraphDef JSON with `node`) into ONNX
 * opset 13 with a dynamic batch. Throws GraphConversionError naming the node it cannot convert.
 */
export function tfGraphToOnnx(artifacts: TF.io.ModelArtifacts, opts: TfGraphToOnnxOptions): TfGraphConversion {
  const topo = artifacts.modelTopology as { node?: GraphNode[] } | undefined;
  if (!topo?.node || !artifacts.weightSpecs || !(artifacts.weightData instanceof ArrayBuffer)) {
    throw new GraphConversionError('the graph model needs a topology with nodes, weight specs and one weight buffer');
  }
  const nodes = new Map(topo.node.map((n) => [n.name, n]));
  const consts = decodeKerasWeights(artifacts.weightSpecs, artifacts.weightData, { allowInt32: true });
  const g = new GraphBuilder();
  const values = new Map<string, Value>();
  const ops: Record<string, number> = {};
  let inputName = '';

  const constOf = (name: string): { shape: number[]; data: Float32Array } | null => consts.get(name.split(':')[0]!) ?? null;
  const constInts = (name: string, node: GraphNode): number[] => {
    const c = constOf(name);
    if (!c) fail(node, `input ${name} is not a constant`);
    return Array.from(c.data);
  };

  const conv = (n: GraphNode, depthwise: boolean, fused: string[]): Value => {
    const x = get(n.input![0]!);
    const w = constOf(n.input![1]!);
    if (!w || w.shape.length !== 4) fail(n, 'its filter is not a constant 4-d tensor');
    if (str(n, 'data_format') && str(n, 'data_format') !== 'NHWC') fail(n, `data_format ${str(n, 'data_format')}`);
    const dil = ints(n, 'dilations');
    if (dil.some((d) => d !== 1)) fail(n, `dilations ${dil.join(',')}`);
    const strides = ints(n, 'strides');
    const [sh, sw] = [strides[1] ?? 1, strides[2] ?? 1];
    const [kh, kw, cin, m] = w.shape as [number, number, number, number];
    const [c, h, wd] = x.shape as [number, number, number];
    const cout = depthwise ? cin * m : m;
    if (cin !== c && !depthwise) fail(n, `filter expects ${cin} channels, input has ${c}`);
    if (depthwise && cin !== c) fail(n, `depthwise filter expects ${cin} channels, input has ${c}`);
    const mode = str(n, 'padding');
    const [pt, pb, oh] = padAxis(h, kh, sh, mode, n);
    const [pl, pr, ow] = padAxis(wd, kw, sw, mode, n);
    // HWIO (or HW,C,mult) -> OIHW (group = C for depthwise: [C*mult, 1, kh, kw])
    const W = new Float32Array(cout * (depthwise ? 1 : cin) * kh * kw);
    for (let y = 0; y < kh; y++)
      for (let xx = 0; xx < kw; xx++)
        for (let i = 0; i < cin; i++)
          for (let o = 0; o < m; o++) {
            const src = ((y * kw + xx) * cin + i) * m + o;
            const dst = depthwise ? ((i * m + o) * kh + y) * kw + xx : ((o * cin + i) * kh + y) * kw + xx;
            W[dst] = w.data[src]!;
          }
    const inputs = [x.tensor, g.floats(`${n.name}_W`, depthwise ? [cout, 1, kh, kw] : [cout, cin, kh, kw], W)];
    const rest = [...fused];
    if (rest[0] === 'BiasAdd') {
      rest.shift();
      const b = constOf(n.input![2]!);
      if (!b || b.data.length !== cout) fail(n, 'its bias is not a constant of the output channels');
      inputs.push(g.floats(`${n.name}_B`, [cout], b.data));
    }
    let y = g.node('Conv', inputs, onnxName(n.name), {
      kernel_shape: [kh, kw],
      strides: [sh, sw],
      pads: [pt, pl, pb, pr],
      group: depthwise ? cin : 1,
    });
    for (const act of rest) y = activation(act, y, n);
    return { tensor: y, shape: [cout, oh, ow] };
  };

  const activation = (act: string, x: string, n: GraphNode): string => {
    switch (act) {
      case 'Relu':
        return g.node('Relu', [x], `${onnxName(n.name)}_relu`);
      case 'Relu6':
        return g.node('Clip', [x, g.floats(`${n.name}_min`, [], new Float32Array([0])), g.floats(`${n.name}_max`, [], new Float32Array([6]))], `${onnxName(n.name)}_relu6`);
      default:
        fail(n, `fused op ${act}`);
    }
  };

  /** A constant operand of an elementwise op, laid out to broadcast against NCHW. */
  const broadcastConst = (name: string, n: GraphNode, channels: number): string => {
    const c = constOf(name)!;
    const size = c.data.length;
    if (size === 1) return g.floats(`${n.name}_k`, [], c.data.slice(0, 1));
    if (size === channels && c.shape[c.shape.length - 1] === channels) return g.floats(`${n.name}_k`, [channels, 1, 1], c.data);
    fail(n, `constant ${name} of shape [${c.shape.join(', ')}] does not broadcast per channel`);
  };

  const elementwise = (n: GraphNode, onnxOp: string): Value => {
    const [a, b] = n.input!;
    const ca = constOf(a!);
    const cb = constOf(b!);
    if (ca && cb) fail(n, 'both operands are constants');
    const v = ca ? get(b!) : get(a!);
    if (ca || cb) {
      const k = broadcastConst(ca ? a! : b!, n, v.shape[0]!);
      return { tensor: g.node(onnxOp, ca ? [k, v.tensor] : [v.tensor, k], onnxName(n.name)), shape: v.shape };
    }
    const va = get(a!);
    const vb = get(b!);
    // broadcasting [C,1,1] against [C,H,W] (squeeze-excite) is fine in NCHW as in NHWC
    const shape = va.shape.map((d, i) => Math.max(d, vb.shape[i] ?? 1));
    return { tensor: g.node(onnxOp, [va.tensor, vb.tensor], onnxName(n.name)), shape };
  };

  const convertNode = (n: GraphNode): Value => {
    ops[n.op] = (ops[n.op] ?? 0) + 1;
    switch (n.op) {
      case 'Placeholder': {
        const dims = (n.attr?.shape as unknown as { shape?: { dim?: { size: string }[] } })?.shape?.dim?.map((d) => Number(d.size)) ?? [];
        if (dims.length !== 4) fail(n, 'the input is not a 4-d NHWC image batch');
        const size = opts.inputSize ?? dims[1]!;
        inputName = g.unique(onnxName(n.name));
        const t = g.node('Transpose', [inputName], `${onnxName(n.name)}_nchw`, { perm: [0, 3, 1, 2] });
        return { tensor: t, shape: [dims[3]!, size, size] };
      }
      case 'Identity':
        return get(n.input![0]!);
      case '_FusedConv2D':
        return conv(n, false, strs(n, 'fused_ops'));
      case 'FusedDepthwiseConv2dNative':
        return conv(n, true, strs(n, 'fused_ops'));
      case 'Conv2D':
        return conv(n, false, []);
      case 'DepthwiseConv2dNative':
        return conv(n, true, []);
      case 'Relu':
      case 'Relu6':
      case 'Sigmoid': {
        const x = get(n.input![0]!);
        const t = n.op === 'Sigmoid' ? g.node('Sigmoid', [x.tensor], onnxName(n.name)) : activation(n.op, x.tensor, n);
        return { tensor: t, shape: x.shape };
      }
      case 'Mul':
        return elementwise(n, 'Mul');
      case 'Add':
      case 'AddV2':
        return elementwise(n, 'Add');
      case 'Sub':
        return elementwise(n, 'Sub');
      case 'Mean': {
        const x = get(n.input![0]!);
        const axes = constInts(n.input![1]!, n);
        if (axes.length !== 2 || !axes.includes(1) || !axes.includes(2) || !n.attr?.keep_dims?.b) fail(n, `mean over axes ${axes.join(',')} (only the spatial axes, kept)`);
        return { tensor: g.node('ReduceMean', [x.tensor], onnxName(n.name), { axes: [2, 3], keepdims: 1 }), shape: [x.shape[0]!, 1, 1] };
      }
      case 'ResizeBilinear': {
        if (n.attr?.align_corners?.b || n.attr?.half_pixel_centers?.b) fail(n, 'align_corners / half_pixel_centers (only the plain asymmetric mapping)');
        const x = get(n.input![0]!);
        // the target size is written for the placeholder's input size; keep it as a scale factor
        const size = constInts(n.input![1]!, n);
        const base = baseShapes.get(n.input![0]!.split(':')[0]!);
        const [bh, bw] = base ?? [x.shape[1]!, x.shape[2]!];
        const sy = size[0]! / bh;
        const sx = size[1]! / bw;
        if (!Number.isInteger(sy) || !Number.isInteger(sx)) fail(n, `scale ${sy}x${sx} is not an integer`);
        const roi = g.floats(`${n.name}_roi`, [0], new Float32Array(0));
        const scales = g.floats(`${n.name}_scales`, [4], new Float32Array([1, 1, sy, sx]));
        const t = nodeWithStrings(g, 'Resize', [x.tensor, roi, scales], onnxName(n.name), { mode: 'linear', coordinate_transformation_mode: 'asymmetric' });
        return { tensor: t, shape: [x.shape[0]!, x.shape[1]! * sy, x.shape[2]! * sx] };
      }
      case 'ConcatV2': {
        const inputs = n.input!.slice(0, -1).map(get);
        const axis = constInts(n.input![n.input!.length - 1]!, n)[0];
        if (axis !== 3 && axis !== -1) fail(n, `concat on axis ${String(axis)} (only channels)`);
        const c = inputs.reduce((s, v) => s + v.shape[0]!, 0);
        return { tensor: g.node('Concat', inputs.map((v) => v.tensor), onnxName(n.name), { axis: 1 }), shape: [c, inputs[0]!.shape[1]!, inputs[0]!.shape[2]!] };
      }
      default:
        fail(n, `op ${n.op} is not supported`);
    }
  };

  // Spatial sizes each node has at the placeholder's own input size (ResizeBilinear's constants are written for those).
  const baseShapes = new Map<string, [number, number]>();
  const visiting = new Set<string>();
  function get(ref: string): Value {
    const name = ref.split(':')[0]!;
    if (ref.includes(':') && !ref.endsWith(':0')) fail(name, `output ${ref} of a multi-output node`);
    const have = values.get(name);
    if (have) return have;
    const n = nodes.get(name);
    if (!n) fail(name, 'it is referenced but not defined');
    if (n.op === 'Const') fail(n, 'a constant used where a tensor is expected');
    if (visiting.has(name)) fail(n, 'the graph has a cycle');
    visiting.add(name);
    const v = convertNode(n);
    visiting.delete(name);
    values.set(name, v);
    return v;
  }

  // ResizeBilinear's constant targets are written for the placeholder's own size.
  for (const [k, v] of shapesAtOwnSize(topo.node, consts)) baseShapes.set(k, v);

  const outputs: { name: string; shape: number[] }[] = [];
  for (const out of opts.outputs) {
    const v = get(out);
    const name = onnxName(out);
    let t = v.tensor;
    let shape = v.shape;
    const keep = opts.keepChannels?.[out];
    if (keep) {
      t = g.node('Gather', [t, g.int64s(`${name}_keep`, keep)], `${name}_kept`, { axis: 1 });
      shape = [keep.length, shape[1]!, shape[2]!];
    }
    g.nodes.push({ opType: 'Identity', input: [t], output: [name], name: `${name}_out` });
    outputs.push({ name, shape });
  }
  const input = [...nodes.values()].find((n) => n.op === 'Placeholder')!;
  const inDims = (input.attr?.shape as unknown as { shape: { dim: { size: string }[] } }).shape.dim.map((d) => Number(d.size));
  const size = opts.inputSize ?? inDims[1]!;
  const bytes = g.encode(
    { producer: 'carstudio tf-graph-onnx', version: TF_GRAPH_ONNX_CONVERTER_VERSION, docString: opts.docString, graphName: 'graph' },
    [[inputName, [size, size, inDims[3]!]]],
    outputs.map((o) => [o.name, o.shape] as [string, number[]]),
  );
  return { bytes, inputName, outputs, ops, nodes: g.nodes.length };
}

/**
 * The [H, W] of every convolutional node at the placeholder's own input size: strides and
 * 'SAME'/'VALID' padding decide them, resizes take their constant target.
 */
function shapesAtOwnSize(all: GraphNode[], consts: Map<string, { shape: number[]; data: Float32Array }>): Map<string, [number, number]> {
  const byName = new Map(all.map((n) => [n.name, n]));
  const memo = new Map<string, [number, number]>();
  const hw = (ref: string): [number, number] => {
    const name = ref.split(':')[0]!;
    const have = memo.get(name);
    if (have) return have;
    const n = byName.get(name);
    if (!n) fail(name, 'it is referenced but not defined');
    let out: [number, number];
    if (n.op === 'Placeholder') {
      const d = (n.attr?.shape as unknown as { shape: { dim: { size: string }[] } }).shape.dim.map((x) => Number(x.size));
      out = [d[1]!, d[2]!];
    } else if (['_FusedConv2D', 'FusedDepthwiseConv2dNative', 'Conv2D', 'DepthwiseConv2dNative'].includes(n.op)) {
      const [h, w] = hw(n.input![0]!);
      const f = consts.get(n.input![1]!)!;
      const s = ints(n, 'strides');
      const mode = str(n, 'padding');
      out = [padAxis(h, f.shape[0]!, s[1] ?? 1, mode, n)[2], padAxis(w, f.shape[1]!, s[2] ?? 1, mode, n)[2]];
    } else if (n.op === 'ResizeBilinear') {
      const c = consts.get(n.input![1]!)!;
      out = [c.data[0]!, c.data[1]!];
    } else if (n.op === 'Mean') {
      out = [1, 1];
    } else {
      // elementwise and the like: the largest of the non-constant inputs
      const ins = (n.input ?? []).filter((i) => !consts.has(i.split(':')[0]!) && byName.get(i.split(':')[0]!)?.op !== 'Const');
      const shapes = ins.map(hw);
      out = shapes.reduce<[number, number]>((a, b) => [Math.max(a[0], b[0]), Math.max(a[1], b[1])], [1, 1]);
    }
    memo.set(name, out);
    return out;
  };
  for (const n of all) if (n.op === 'ResizeBilinear') hw(n.input![0]!);
  return memo;
}

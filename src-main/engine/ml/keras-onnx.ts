// Converts a Keras layers model, as TensorFlow.js stores it (model.json topology + weight shards;
// see readMobilenetArtifacts), into an ONNX graph that ONNX Runtime runs: the layers from the
// input up to a chosen layer, for the layer kinds a MobileNet-style network uses. Unknown layer
// kinds, and options of known kinds that the converter does not reproduce exactly, are refused
// with the layer's name rather than converted approximately.
//
// Layout: the graph keeps the Keras input, NHWC float32 [N, H, W, C], transposes it to NCHW once,
// runs every convolution in NCHW (ONNX Conv; group = channels for a depthwise convolution), and
// returns tensors in Keras's order (a Flatten of a spatial tensor transposes back to NHWC first,
// so its rows match Keras's channels_last flatten). Batch normalisation following a convolution
// is folded into that convolution's weights and bias; a ZeroPadding2D feeding only 'valid'
// convolutions becomes their pads. Padding 'same' pads as TensorFlow does: the odd pixel at the
// bottom/right.
import type * as TF from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import type { onnx as P } from 'onnx-proto';

const { onnx } = onnxProto;

/** Bumped whenever the converter's output changes, so files converted before are rebuilt. */
export const KERAS_ONNX_CONVERTER_VERSION = 1;
export const ONNX_OPSET = 13;
/** The IR version that goes with opset 13 (ONNX 1.8). */
export const ONNX_IR_VERSION = 7;

export interface KerasToOnnxOptions {
  /** The layer whose output is the graph's output (with `pool`, the last of the pooled layers). */
  output: string;
  /**
   * Instead of `output` itself: the spatial outputs of these layers, each pooled over H and W by
   * its mean and its max, concatenated into one [N, sum of 2C] output (mean of a layer, then max).
   */
  pool?: string[];
  /** Graph input and output names (default 'input' and 'output'). */
  inputName?: string;
  outputName?: string;
  docString?: string;
}

export interface OnnxConversion {
  /** The serialized ModelProto. */
  bytes: Uint8Array;
  inputName: string;
  outputName: string;
  /** Input shape without the batch dimension: [H, W, C]. */
  inputShape: number[];
  /** Output shape without the batch dimension, in Keras's (channels_last) layout. */
  outputShape: number[];
  /** Layers converted, by Keras class name. */
  layers: Record<string, number>;
  nodes: number;
}

interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

interface Weight {
  shape: number[];
  data: Float32Array;
}

type Shape = number[]; // without the batch dimension; [H, W, C] spatial, [D] flat

interface Value {
  tensor: string;
  shape: Shape;
}

/** Where a conversion stops: the layer and why. */
export class KerasConversionError extends Error {}

function fail(layer: KerasLayer | string, why: string): never {
  const name = typeof layer === 'string' ? layer : `${layer.name} (${layer.class_name})`;
  throw new KerasConversionError(`cannot convert layer ${name} to ONNX: ${why}`);
}

/** The layers of a Keras Model/Functional topology (as in model.json's modelTopology). */
function topologyLayers(topology: unknown): KerasLayer[] {
  const t = topology as { model_config?: unknown; config?: unknown; class_name?: string };
  const cfg = (t.model_config ?? t) as { class_name?: string; config?: { layers?: unknown } };
  if (cfg.class_name !== 'Model' && cfg.class_name !== 'Functional') {
    throw new KerasConversionError(`expected a Keras functional Model topology, got ${String(cfg.class_name)}`);
  }
  const layers = cfg.config?.layers;
  if (!Array.isArray(layers)) throw new KerasConversionError('the topology has no layers');
  return layers as KerasLayer[];
}

/** The names of a layer's inputs (one call of the layer; shared layers are refused). */
function inboundNames(layer: KerasLayer): string[] {
  const nodes = layer.inbound_nodes;
  if (nodes.length === 0) return [];
  if (nodes.length !== 1) fail(layer, `it is called ${nodes.length} times (shared layers are not supported)`);
  const node = nodes[0] as unknown[];
  return node.map((ref) => {
    const r = ref as [string, number, number];
    if (!Array.isArray(r) || typeof r[0] !== 'string' || r[1] !== 0 || r[2] !== 0) fail(layer, `unsupported inbound reference ${JSON.stringify(ref)}`);
    return r[0];
  });
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/**
 * Decodes the weight buffer as tfjs does (io.decodeWeights): float32 stored as is, uint8/uint16
 * affine-quantized weights as q * scale + min, float16 as half floats; with allowInt32, int32
 * constants as floats.
 */
export function decodeKerasWeights(specs: readonly TF.io.WeightsManifestEntry[], data: ArrayBuffer, opts: { allowInt32?: boolean } = {}): Map<string, Weight> {
  const out = new Map<string, Weight>();
  let offset = 0;
  for (const spec of specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const q = spec.quantization;
    let values: Float32Array;
    if (spec.dtype === 'int32' && opts.allowInt32 && !q) {
      // a graph model's small integer constants (axes, sizes), kept as floats
      values = Float32Array.from(new Int32Array(data.slice(offset, offset + 4 * n)));
      offset += 4 * n;
      out.set(spec.name, { shape: [...spec.shape], data: values });
      continue;
    }
    if (spec.dtype !== 'float32') throw new KerasConversionError(`weight ${spec.name} is ${spec.dtype}; only float32 weights are supported`);
    if (!q) {
      if (offset % 4 !== 0) values = new Float32Array(data.slice(offset, offset + 4 * n));
      else values = new Float32Array(data, offset, n).slice();
      offset += 4 * n;
    } else if (q.dtype === 'uint8' || q.dtype === 'uint16') {
      if (typeof q.scale !== 'number' || typeof q.min !== 'number') {
        throw new KerasConversionError(`weight ${spec.name} is ${q.dtype}-quantized without scale and min`);
      }
      const bytes = q.dtype === 'uint8' ? 1 : 2;
      const raw = new DataView(data, offset, bytes * n);
      values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = (bytes === 1 ? raw.getUint8(i) : raw.getUint16(2 * i, true)) * q.scale + q.min;
      offset += bytes * n;
    } else if (q.dtype === 'float16') {
      const raw = new DataView(data, offset, 2 * n);
      values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = halfToFloat(raw.getUint16(2 * i, true));
      offset += 2 * n;
    } else {
      throw new KerasConversionError(`weight ${spec.name} has an unsupported quantization ${String(q.dtype)}`);
    }
    out.set(spec.name, { shape: [...spec.shape], data: values });
  }
  if (offset !== data.byteLength) throw new KerasConversionError(`the weight manifest describes ${offset} bytes, the weight data holds ${data.byteLength}`);
  return out;
}

const num = (v: unknown, what: string, layer: KerasLayer): number => {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(layer, `${what} is ${JSON.stringify(v)}, expected a number`);
  return v;
};
const pair = (v: unknown, what: string, layer: KerasLayer): [number, number] => {
  if (typeof v === 'number') return [v, v];
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x) && x >= 1)) fail(layer, `${what} is ${JSON.stringify(v)}`);
  return [v[0] as number, v[1] as number];
};

/** TensorFlow's padding for one spatial axis: [before, after, output size]. */
function padAxis(size: number, kernel: number, stride: number, dilation: number, mode: string, layer: KerasLayer): [number, number, number] {
  const k = (kernel - 1) * dilation + 1;
  if (mode === 'valid') {
    if (size < k) fail(layer, `input size ${size} is smaller than its kernel ${k}`);
    return [0, 0, Math.floor((size - k) / stride) + 1];
  }
  if (mode === 'same') {
    const outSize = Math.ceil(size / stride);
    const total = Math.max((outSize - 1) * stride + k - size, 0);
    const before = Math.floor(total / 2);
    return [before, total - before, outSize];
  }
  fail(layer, `padding '${mode}' is not supported`);
}

/** Collects the nodes and initializers of an ONNX graph under unique names. */
export class GraphBuilder {
  nodes: P.INodeProto[] = [];
  initializers: P.ITensorProto[] = [];
  private used = new Set<string>();

  unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  /** attrs: integers as numbers, integer lists as arrays, floats as { float: value } (ONNX checks the attribute's type). */
  node(opType: string, inputs: string[], output: string, attrs: Record<string, number | number[] | { float: number }> = {}): string {
    const attribute: P.IAttributeProto[] = Object.entries(attrs).map(([name, v]) => {
      if (Array.isArray(v)) return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v };
      if (typeof v === 'object') return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v.float };
      if (!Number.isInteger(v)) throw new KerasConversionError(`attribute ${name} of ${opType}: ${v} is not an integer`);
      return { name, type: onnx.AttributeProto.AttributeType.INT, i: v };
    });
    const out = this.unique(output);
    this.nodes.push({ opType, input: inputs, output: [out], name: out, attribute });
    return out;
  }

  floats(name: string, dims: number[], values: Float32Array): string {
    const n = this.unique(name);
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    this.initializers.push({ name: n, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: littleEndian(bytes, 4) });
    return n;
  }

  /**
   * The serialized ModelProto (opset ONNX_OPSET) of the nodes so far, with float32 inputs and
   * outputs of a dynamic batch: shapes are given without it.
   */
  encode(meta: { producer: string; version: number; docString?: string; graphName: string }, inputs: [string, number[]][], outputs: [string, number[]][]): Uint8Array {
    const info = ([name, shape]: [string, number[]]): P.IValueInfoProto => ({
      name,
      type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }, ...shape.map((d) => ({ dimValue: d }))] } } },
    });
    const model: P.IModelProto = {
      irVersion: ONNX_IR_VERSION,
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      producerName: meta.producer,
      producerVersion: String(meta.version),
      docString: meta.docString ?? '',
      graph: { name: meta.graphName, node: this.nodes, initializer: this.initializers, input: inputs.map(info), output: outputs.map(info) },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }

  int64s(name: string, values: number[]): string {
    const n = this.unique(name);
    const buf = Buffer.alloc(8 * values.length);
    values.forEach((v, i) => buf.writeBigInt64LE(BigInt(v), 8 * i));
    this.initializers.push({ name: n, dims: [values.length], dataType: onnx.TensorProto.DataType.INT64, rawData: buf });
    return n;
  }
}

/** ONNX raw_data is little-endian; so is every machine Node runs on today, but say so. */
export function littleEndian(bytes: Uint8Array, width: number): Uint8Array {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return bytes;
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += width) for (let j = 0; j < width; j++) out[i + j] = bytes[i + width - 1 - j]!;
  return out;
}

/** The ONNX nodes of a Keras activation name applied to `x`. */
function activation(g: GraphBuilder, name: unknown, x: string, base: string, layer: KerasLayer): string {
  switch (name) {
    case undefined:
    case null:
    case 'linear':
      return x;
    case 'relu':
      return g.node('Relu', [x], `${base}_relu`);
    case 'relu6':
      return g.node('Clip', [x, g.floats(`${base}_min`, [], new Float32Array([0])), g.floats(`${base}_max`, [], new Float32Array([6]))], `${base}_relu6`);
    case 'sigmoid':
      return g.node('Sigmoid', [x], `${base}_sigmoid`);
    case 'tanh':
      return g.node('Tanh', [x], `${base}_tanh`);
    case 'softmax':
      return g.node('Softmax', [x], `${base}_softmax`, { axis: 1 });
    default:
      fail(layer, `activation '${String(name)}' is not supported`);
  }
}

function channelsLast(layer: KerasLayer): void {
  const f = layer.config.data_format;
  if (f !== undefined && f !== null && f !== 'channels_last') fail(layer, `data_format ${String(f)} (only channels_last)`);
}

/**
 * Converts the Keras model in `artifacts` up to the layer `opts.output` into an ONNX model
 * (opset 13). Throws KerasConversionError naming the layer it cannot convert.
 */
export function kerasToOnnx(artifacts: TF.io.ModelArtifacts, opts: KerasToOnnxOptions): OnnxConversion {
  if (!artifacts.modelTopology || !artifacts.weightSpecs || !(artifacts.weightData instanceof ArrayBuffer)) {
    throw new KerasConversionError('the model artifacts need a topology, weight specs and one weight buffer');
  }
  const layers = topologyLayers(artifacts.modelTopology);
  const weights = decodeKerasWeights(artifacts.weightSpecs, artifacts.weightData);
  const byName = new Map(layers.map((l) => [l.name, l]));
  const inputsOf = new Map(layers.map((l) => [l.name, inboundNames(l)]));
  const targets = opts.pool?.length ? opts.pool : [opts.output];
  for (const t of targets) if (!byName.has(t)) throw new KerasConversionError(`the model has no layer ${t}`);

  // The layers the output depends on, and who consumes each of them among those.
  const needed = new Set<string>();
  const stack = [...targets];
  while (stack.length) {
    const n = stack.pop()!;
    if (needed.has(n)) continue;
    if (!byName.has(n)) throw new KerasConversionError(`layer ${n} is referenced but not defined`);
    needed.add(n);
    stack.push(...inputsOf.get(n)!);
  }
  const consumers = new Map<string, KerasLayer[]>();
  for (const l of layers) {
    if (!needed.has(l.name)) continue;
    for (const i of inputsOf.get(l.name)!) consumers.set(i, [...(consumers.get(i) ?? []), l]);
  }
  const soleConsumer = (name: string): KerasLayer | null => {
    const c = consumers.get(name) ?? [];
    return c.length === 1 && !targets.includes(name) ? c[0]! : null;
  };

  const weight = (layer: KerasLayer, key: string, shape?: number[]): Weight => {
    const w = weights.get(`${layer.name}/${key}`);
    if (!w) fail(layer, `weight ${layer.name}/${key} is missing`);
    if (shape && (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i]))) {
      fail(layer, `weight ${key} has shape [${w.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    return w;
  };
  /** gamma / sqrt(var + eps) and beta - mean * that, per channel (float64). */
  const bnAffine = (bn: KerasLayer, c: number): { scale: Float64Array; shift: Float64Array } => {
    const axis = bn.config.axis;
    if (!(axis === -1 || axis === 3 || (Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3)))) {
      fail(bn, `axis ${JSON.stringify(axis)} (only the channel axis)`);
    }
    const eps = num(bn.config.epsilon, 'epsilon', bn);
    const gamma = bn.config.scale === false ? null : weight(bn, 'gamma', [c]).data;
    const beta = bn.config.center === false ? null : weight(bn, 'beta', [c]).data;
    const mean = weight(bn, 'moving_mean', [c]).data;
    const variance = weight(bn, 'moving_variance', [c]).data;
    const scale = new Float64Array(c);
    const shift = new Float64Array(c);
    for (let i = 0; i < c; i++) {
      scale[i] = (gamma ? gamma[i]! : 1) / Math.sqrt(variance[i]! + eps);
      shift[i] = (beta ? beta[i]! : 0) - mean[i]! * scale[i]!;
    }
    return { scale, shift };
  };

  const g = new GraphBuilder();
  const inputName = g.unique(opts.inputName ?? 'input');
  const outputName = opts.outputName ?? 'output';
  g.unique(outputName);
  const values = new Map<string, Value>();
  /** ZeroPadding2D layers folded into the conv that consumes them: [top, bottom, left, right]. */
  const foldedPads = new Map<string, { from: string; pads: [number, number, number, number] }>();
  /** BatchNormalization layers folded into the conv before them. */
  const foldedBn = new Set<string>();
  const counts: Record<string, number> = {};
  let inputShape: Shape | null = null;

  const spatial = (layer: KerasLayer, v: Value): [number, number, number] => {
    if (v.shape.length !== 3) fail(layer, `its input has shape [${v.shape.join(', ')}], expected [H, W, C]`);
    return v.shape as [number, number, number];
  };
  const only = (layer: KerasLayer): Value => {
    const ins = inputsOf.get(layer.name)!;
    if (ins.length !== 1) fail(layer, `it has ${ins.length} inputs, expected 1`);
    return values.get(ins[0]!)!;
  };

  for (const layer of layers) {
    if (!needed.has(layer.name)) continue;
    const cfg = layer.config;
    const cls = layer.class_name;
    counts[cls] = (counts[cls] ?? 0) + 1;
    if (foldedBn.has(layer.name)) continue; // its output was set by the conv it folds into
    switch (cls) {
      case 'InputLayer': {
        if (inputShape) fail(layer, 'the model has more than one input');
        const s = cfg.batch_input_shape;
        if (!Array.isArray(s) || s.length !== 4 || s[0] !== null || !s.slice(1).every((d) => Number.isInteger(d) && d > 0)) {
          fail(layer, `batch_input_shape ${JSON.stringify(s)}, expected [null, H, W, C] with fixed H, W, C`);
        }
        if (cfg.dtype !== undefined && cfg.dtype !== 'float32') fail(layer, `dtype ${String(cfg.dtype)} (only float32)`);
        inputShape = s.slice(1) as number[];
        const nchw = g.node('Transpose', [inputName], `${layer.name}_nchw`, { perm: [0, 3, 1, 2] });
        values.set(layer.name, { tensor: nchw, shape: inputShape });
        break;
      }
      case 'ZeroPadding2D': {
        channelsLast(layer);
        const x = only(layer);
        const [h, w, c] = spatial(layer, x);
        const p = cfg.padding;
        let t: number, b: number, l: number, r: number;
        if (typeof p === 'number') [t, b, l, r] = [p, p, p, p];
        else if (Array.isArray(p) && p.length === 2 && p.every((q) => typeof q === 'number')) [t, b, l, r] = [p[0], p[0], p[1], p[1]] as number[] as [number, number, number, number];
        else if (Array.isArray(p) && p.length === 2 && p.every((q) => Array.isArray(q) && q.length === 2)) [[t, b], [l, r]] = p as [[number, number], [number, number]];
        else fail(layer, `padding ${JSON.stringify(p)}`);
        if (![t, b, l, r].every((v) => Number.isInteger(v) && v >= 0)) fail(layer, `padding ${JSON.stringify(p)}`);
        const next = soleConsumer(layer.name);
        const shape = [h + t + b, w + l + r, c];
        if (next && (next.class_name === 'Conv2D' || next.class_name === 'DepthwiseConv2D') && next.config.padding === 'valid') {
          foldedPads.set(next.name, { from: layer.name, pads: [t, b, l, r] });
          values.set(layer.name, { tensor: x.tensor, shape }); // the conv reads x and pads it itself
        } else {
          const pads = g.int64s(`${layer.name}_pads`, [0, 0, t, l, 0, 0, b, r]);
          values.set(layer.name, { tensor: g.node('Pad', [x.tensor, pads], layer.name, {}), shape });
        }
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        channelsLast(layer);
        const depthwise = cls === 'DepthwiseConv2D';
        const folded = foldedPads.get(layer.name);
        const x = folded ? values.get(inputsOf.get(folded.from)![0]!)! : only(layer);
        const [h0, w0, cin] = spatial(layer, x);
        const [pt, pb, pl, pr] = folded?.pads ?? [0, 0, 0, 0];
        const [kh, kw] = pair(cfg.kernel_size, 'kernel_size', layer);
        const [sh, sw] = pair(cfg.strides ?? 1, 'strides', layer);
        const [dh, dw] = pair(cfg.dilation_rate ?? 1, 'dilation_rate', layer);
        const mode = String(cfg.padding);
        const [t, b, hOut] = padAxis(h0 + pt + pb, kh, sh, dh, mode, layer);
        const [l, r, wOut] = padAxis(w0 + pl + pr, kw, sw, dw, mode, layer);
        let cout: number;
        let onnxW: Float32Array;
        if (depthwise) {
          const mult = num(cfg.depth_multiplier ?? 1, 'depth_multiplier', layer);
          const k = weight(layer, 'depthwise_kernel', [kh, kw, cin, mult]).data;
          cout = cin * mult;
          onnxW = new Float32Array(cout * kh * kw);
          // Keras [kh, kw, in, mult] -> ONNX [in*mult, 1, kh, kw], output channel c*mult + m
          for (let y = 0; y < kh; y++)
            for (let z = 0; z < kw; z++)
              for (let c = 0; c < cin; c++) for (let m = 0; m < mult; m++) onnxW[((c * mult + m) * kh + y) * kw + z] = k[((y * kw + z) * cin + c) * mult + m]!;
        } else {
          cout = num(cfg.filters, 'filters', layer);
          if ((cfg.groups ?? 1) !== 1) fail(layer, `groups ${String(cfg.groups)} (only 1)`);
          const k = weight(layer, 'kernel', [kh, kw, cin, cout]).data;
          onnxW = new Float32Array(cout * cin * kh * kw);
          // Keras [kh, kw, in, out] -> ONNX [out, in, kh, kw]
          for (let y = 0; y < kh; y++)
            for (let z = 0; z < kw; z++)
              for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) onnxW[((o * cin + c) * kh + y) * kw + z] = k[((y * kw + z) * cin + c) * cout + o]!;
        }
        const bias = cfg.use_bias === false ? null : weight(layer, 'bias', [cout]).data;
        let outName = layer.name;
        let weightsOut = onnxW;
        let biasOut: Float32Array | null = bias ? Float32Array.from(bias) : null;
        const next = soleConsumer(layer.name);
        const act = cfg.activation ?? 'linear';
        if (next && next.class_name === 'BatchNormalization' && act === 'linear') {
          // y = (conv(x, W) + b) * scale + shift = conv(x, W * scale) + (b * scale + shift)
          const { scale, shift } = bnAffine(next, cout);
          const per = onnxW.length / cout;
          weightsOut = new Float32Array(onnxW.length);
          for (let o = 0; o < cout; o++) for (let i = 0; i < per; i++) weightsOut[o * per + i] = onnxW[o * per + i]! * scale[o]!;
          biasOut = new Float32Array(cout);
          for (let o = 0; o < cout; o++) biasOut[o] = (bias ? bias[o]! : 0) * scale[o]! + shift[o]!;
          foldedBn.add(next.name);
          outName = next.name;
        }
        const wName = g.floats(`${layer.name}_W`, depthwise ? [cout, 1, kh, kw] : [cout, cin, kh, kw], weightsOut);
        const inputs = [x.tensor, wName];
        if (biasOut) inputs.push(g.floats(`${layer.name}_B`, [cout], biasOut));
        const y = g.node('Conv', inputs, outName, {
          kernel_shape: [kh, kw],
          strides: [sh, sw],
          dilations: [dh, dw],
          pads: [t + pt, l + pl, b + pb, r + pr],
          group: depthwise ? cin : 1,
        });
        const shape = [hOut, wOut, cout];
        const out = { tensor: activation(g, act, y, outName, layer), shape };
        values.set(layer.name, out);
        if (outName !== layer.name) values.set(outName, out);
        break;
      }
      case 'BatchNormalization': {
        const x = only(layer);
        const c = x.shape[x.shape.length - 1]!;
        const { scale, shift } = bnAffine(layer, c);
        if (x.shape.length === 3) {
          const y = g.node(
            'BatchNormalization',
            [
              x.tensor,
              g.floats(`${layer.name}_scale`, [c], Float32Array.from(scale)),
              g.floats(`${layer.name}_shift`, [c], Float32Array.from(shift)),
              g.floats(`${layer.name}_zero`, [c], new Float32Array(c)),
              g.floats(`${layer.name}_one`, [c], new Float32Array(c).fill(1)),
            ],
            layer.name,
            { epsilon: { float: 0 } },
          );
          values.set(layer.name, { tensor: y, shape: x.shape });
        } else {
          const m = g.node('Mul', [x.tensor, g.floats(`${layer.name}_scale`, [c], Float32Array.from(scale))], `${layer.name}_mul`);
          values.set(layer.name, { tensor: g.node('Add', [m, g.floats(`${layer.name}_shift`, [c], Float32Array.from(shift))], layer.name), shape: x.shape });
        }
        break;
      }
      case 'ReLU': {
        const x = only(layer);
        const slope = cfg.negative_slope ?? 0;
        const threshold = cfg.threshold ?? 0;
        if (slope !== 0) fail(layer, `negative_slope ${String(slope)} (only 0)`);
        if (threshold !== 0) fail(layer, `threshold ${String(threshold)} (only 0)`);
        const max = cfg.max_value;
        let y: string;
        if (max === null || max === undefined) y = g.node('Relu', [x.tensor], layer.name);
        else {
          const hi = num(max, 'max_value', layer);
          y = g.node('Clip', [x.tensor, g.floats(`${layer.name}_min`, [], new Float32Array([0])), g.floats(`${layer.name}_max`, [], new Float32Array([hi]))], layer.name);
        }
        values.set(layer.name, { tensor: y, shape: x.shape });
        break;
      }
      case 'Activation': {
        const x = only(layer);
        if (cfg.activation === 'softmax' && x.shape.length !== 1) fail(layer, 'softmax over a spatial tensor is not supported');
        values.set(layer.name, { tensor: activation(g, cfg.activation, x.tensor, layer.name, layer), shape: x.shape });
        break;
      }
      case 'Add': {
        const ins = inputsOf.get(layer.name)!.map((n) => values.get(n)!);
        if (ins.length < 2) fail(layer, `it has ${ins.length} inputs`);
        const shape = ins[0]!.shape;
        for (const v of ins) if (v.shape.join() !== shape.join()) fail(layer, `its inputs have shapes ${ins.map((i) => `[${i.shape.join(', ')}]`).join(' and ')}`);
        const y = g.node(ins.length === 2 ? 'Add' : 'Sum', ins.map((v) => v.tensor), layer.name);
        values.set(layer.name, { tensor: y, shape });
        break;
      }
      case 'AveragePooling2D':
      case 'MaxPooling2D': {
        channelsLast(layer);
        const x = only(layer);
        const [h, w, c] = spatial(layer, x);
        const [kh, kw] = pair(cfg.pool_size, 'pool_size', layer);
        const [sh, sw] = pair(cfg.strides ?? cfg.pool_size, 'strides', layer);
        const mode = String(cfg.padding ?? 'valid');
        const [t, b, hOut] = padAxis(h, kh, sh, 1, mode, layer);
        const [l, r, wOut] = padAxis(w, kw, sw, 1, mode, layer);
        // TensorFlow's 'same' average pool divides by the pixels inside the image: count_include_pad 0
        const y = g.node(cls === 'AveragePooling2D' ? 'AveragePool' : 'MaxPool', [x.tensor], layer.name, {
          kernel_shape: [kh, kw],
          strides: [sh, sw],
          pads: [t, l, b, r],
        });
        values.set(layer.name, { tensor: y, shape: [hOut, wOut, c] });
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        channelsLast(layer);
        const x = only(layer);
        const [, , c] = spatial(layer, x);
        if (cfg.keepdims === true) fail(layer, 'keepdims true is not supported');
        const pooled = g.node(cls === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool', [x.tensor], `${layer.name}_pool`);
        values.set(layer.name, { tensor: g.node('Flatten', [pooled], layer.name, { axis: 1 }), shape: [c] });
        break;
      }
      case 'Flatten': {
        channelsLast(layer);
        const x = only(layer);
        if (x.shape.length === 1) values.set(layer.name, x);
        else {
          // back to NHWC first: Keras flattens channels_last tensors in (h, w, c) order
          const nhwc = g.node('Transpose', [x.tensor], `${layer.name}_nhwc`, { perm: [0, 2, 3, 1] });
          values.set(layer.name, { tensor: g.node('Flatten', [nhwc], layer.name, { axis: 1 }), shape: [x.shape.reduce((a, b) => a * b, 1)] });
        }
        break;
      }
      case 'Dropout':
        values.set(layer.name, only(layer)); // inference: identity
        break;
      case 'Dense': {
        const x = only(layer);
        if (x.shape.length !== 1) fail(layer, `its input has shape [${x.shape.join(', ')}]; only a flat input is supported`);
        const units = num(cfg.units, 'units', layer);
        const k = weight(layer, 'kernel', [x.shape[0]!, units]).data;
        const inputs = [x.tensor, g.floats(`${layer.name}_W`, [x.shape[0]!, units], k)];
        if (cfg.use_bias !== false) inputs.push(g.floats(`${layer.name}_B`, [units], weight(layer, 'bias', [units]).data));
        const y = g.node('Gemm', inputs, layer.name);
        values.set(layer.name, { tensor: activation(g, cfg.activation, y, layer.name, layer), shape: [units] });
        break;
      }
      default:
        fail(layer, `layer kind ${cls} is not supported`);
    }
  }

  let out = values.get(opts.output);
  if (opts.pool?.length) {
    const parts: string[] = [];
    let dim = 0;
    for (const t of opts.pool) {
      const v = values.get(t);
      if (!v || v.shape.length !== 3) throw new KerasConversionError(`layer ${t} has no spatial output to pool`);
      for (const op of ['ReduceMean', 'ReduceMax']) {
        const r = g.node(op, [v.tensor], `${t}_${op === 'ReduceMean' ? 'mean' : 'max'}`, { axes: [2, 3], keepdims: 0 });
        parts.push(r);
        dim += v.shape[2]!;
      }
    }
    out = { tensor: g.node('Concat', parts, 'pooled', { axis: 1 }), shape: [dim] };
  }
  if (!inputShape || !out) throw new KerasConversionError(`layer ${opts.output} does not depend on the model's input`);
  let final = out.tensor;
  if (out.shape.length === 3) final = g.node('Transpose', [final], `${opts.output}_nhwc`, { perm: [0, 2, 3, 1] });
  g.nodes.push({ opType: 'Identity', input: [final], output: [outputName], name: outputName });

  const bytes = g.encode(
    { producer: 'carstudio keras-onnx', version: KERAS_ONNX_CONVERTER_VERSION, docString: opts.docString, graphName: opts.output },
    [[inputName, inputShape]],
    [[outputName, out.shape]],
  );
  return { bytes, inputName, outputName, inputShape, outputShape: out.shape, layers: counts, nodes: g.nodes.length };
}

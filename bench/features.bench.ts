import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { extractFeatures, mobilenetExtractor, type FeatureExtractor } from '../src-main/engine/filter/extract.ts';
import { decodeForModel } from '../src-main/engine/ml/decode.ts';
import { ortAvailable } from '../src-main/engine/ml/ort.ts';
import type { Benchmark } from './index.ts';

const PHOTOS = path.resolve(import.meta.dirname, '../../shared/data/listing-photos');
const N = 200;
const B = 16;

/** Peak RSS (MB) of this process since the last resetPeakRss (Linux: VmHWM), else the process's lifetime peak. */
function peakRssMb(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

/** Starts a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM to the current RSS). */
function resetPeakRss(): void {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux: the lifetime peak is reported
  }
}

interface Phase {
  imagesPerSec: number;
  cpuMsPerImage: number;
  peakRssMb: number;
}

/** Times `fn` over `n` images: wall clock, this process's CPU time (every thread), peak RSS. */
async function measure(n: number, fn: () => Promise<void>): Promise<Phase> {
  resetPeakRss();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const secs = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { imagesPerSec: n / secs, cpuMsPerImage: (c.user + c.system) / 1000 / n, peakRssMb: peakRssMb() };
}

const fmt = (p: Phase): string => `${p.imagesPerSec.toFixed(1)} images/s, ${p.cpuMsPerImage.toFixed(0)} CPU-ms/image, peak RSS ${p.peakRssMb.toFixed(0)} MB`;

/**
 * MobileNetV2 feature extraction (extractFeatures: sharp decode overlapped with the model, batches
 * of 16) on the same 200 real photos, in one run: ONNX Runtime, tfjs, and the PyTorch/torchvision
 * reference (bench/mobilenet_torchvision.py, when /usr/bin/python3 has torch), each with decode
 * included, with CPU-ms per image and peak RSS; plus ONNX Runtime's forward pass alone on the same
 * photos decoded beforehand, on the same threads (the extraction's share of it is what to read).
 */
export const featuresBench: Benchmark = {
  name: 'features',
  description: `mobilenet_v2 feature extraction images/s (decode included) on ${N} real photos: ONNX Runtime vs tfjs vs PyTorch (torchvision), and against ONNX Runtime's forward pass alone`,
  async run() {
    if (!fs.existsSync(path.join(PHOTOS, 'good')) || !fs.existsSync(path.join(PHOTOS, 'bad'))) {
      console.log(`features: skipped, ${PHOTOS} is absent`);
      return { skipped: `${PHOTOS} is absent` };
    }
    const pick = (sub: string, n: number) =>
      fs
        .readdirSync(path.join(PHOTOS, sub))
        .filter((f) => f.endsWith('.jpg'))
        .sort()
        .slice(0, n)
        .map((f) => path.join(PHOTOS, sub, f));
    const files = [...pick('good', N / 2), ...pick('bad', N / 2)];
    const inputs = files.map((data, id) => ({ id, data }));
    const threads = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    const out: Record<string, unknown> = { photos: files.length, threads, batch: B, loadAverage: os.loadavg().map((l) => +l.toFixed(2)) };
    console.log(`${files.length} photos, ${threads} threads, batch ${B}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.cpus().length} cores`);
    const rows: Record<string, Float32Array> = {};

    if (ortAvailable()) {
      const { loadMobilenetOnnx } = await import('../src-main/engine/ml/mobilenet-onnx.ts');
      const ex = await loadMobilenetOnnx({ threads, device: 'cpu', log: (_l, m) => console.log(`  ${m}`) });
      try {
        await extractFeatures(inputs.slice(0, B), { batchSize: B }, ex); // warm-up: first-call allocations
        let r: Awaited<ReturnType<typeof extractFeatures>> | null = null;
        const withDecode = await measure(files.length, async () => {
          r = await extractFeatures(inputs, { batchSize: B }, ex);
        });
        rows.onnx = r!.features;
        console.log(`onnx (${ex.backend}), decode included: ${fmt(withDecode)}`);
        // the forward pass alone: the same photos decoded beforehand, the same batches and threads
        const decoded = await Promise.all(files.map((f) => decodeForModel(f)));
        const buf = new Float32Array(B * decoded[0]!.length);
        const forward = await measure(files.length, async () => {
          for (let i = 0; i < decoded.length; i += B) {
            const n = Math.min(B, decoded.length - i);
            for (let j = 0; j < n; j++) buf.set(decoded[i + j]!, j * decoded[0]!.length);
            await ex.embed(buf, n);
          }
        });
        console.log(`onnx forward pass alone (inputs decoded beforehand): ${fmt(forward)}`);
        const share = withDecode.imagesPerSec / forward.imagesPerSec;
        console.log(`onnx with decode / forward alone: ${(share * 100).toFixed(0)}% (target >= 70%)`);
        Object.assign(out, { onnx: { backend: ex.backend, ...withDecode }, onnxForwardOnly: forward, onnxDecodeShareOfForward: share });
      } finally {
        await ex.dispose();
      }
    } else {
      console.log('features: onnxruntime-node is not installed, tfjs (and PyTorch) only');
    }

    const tf: FeatureExtractor & { backend: string } = await mobilenetExtractor({ runtime: 'tfjs', log: (_l, m) => console.log(`  ${m}`) });
    await extractFeatures(inputs.slice(0, B), { batchSize: B }, tf);
    let rt: Awaited<ReturnType<typeof extractFeatures>> | null = null;
    const tfjs = await measure(files.length, async () => {
      rt = await extractFeatures(inputs, { batchSize: B }, tf);
    });
    rows.tfjs = rt!.features;
    console.log(`tfjs (${tf.backend}), decode included: ${fmt(tfjs)}`);
    out.tfjs = { backend: tf.backend, ...tfjs };

    const list = path.join(os.tmpdir(), `carstudio-features-bench-${process.pid}.txt`);
    fs.writeFileSync(list, files.join('\n') + '\n');
    const py = spawnSync('/usr/bin/python3', [path.join(import.meta.dirname, 'mobilenet_torchvision.py'), list, String(threads)], { encoding: 'utf8' });
    fs.rmSync(list, { force: true });
    if (py.error || py.status !== 0) {
      const why = py.error
        ? `/usr/bin/python3 cannot run (${py.error.message})`
        : /No module named '?(torch|torchvision)/.test(py.stderr)
          ? '/usr/bin/python3 has no torch/torchvision (apt-get install -y python3-torchvision)'
          : `the script failed: ${py.stderr.trim().split('\n').pop()}`;
      console.log(`PyTorch reference: skipped, ${why}`);
      out.torch = { skipped: why };
    } else {
      const ref = JSON.parse(py.stdout.trim().split('\n').pop()!) as Phase & { forwardImagesPerSec: number; torch: string; batch: number };
      console.log(
        `torch ${ref.torch} (torchvision mobilenet_v2, PIL decode, batch ${ref.batch}, ${threads} threads), decode included: ${fmt(ref)}; forward alone ${ref.forwardImagesPerSec.toFixed(1)} images/s`,
      );
      out.torch = ref;
    }

    const o = out.onnx as Phase | undefined;
    const t = out.torch as Partial<Phase>;
    if (o) {
      out.onnxOverTfjs = o.imagesPerSec / tfjs.imagesPerSec;
      console.log(`onnx / tfjs: ${(out.onnxOverTfjs as number).toFixed(2)}x images/s decode included (target >= 4x)`);
      if (t.imagesPerSec) {
        out.onnxOverTorch = o.imagesPerSec / t.imagesPerSec;
        console.log(`onnx / torch: ${(out.onnxOverTorch as number).toFixed(2)}x images/s decode included (target >= 3x)`);
      }
    }
    if (rows.onnx && rows.tfjs) {
      let maxAbs = 0;
      for (let i = 0; i < rows.onnx.length; i++) maxAbs = Math.max(maxAbs, Math.abs(rows.onnx[i]! - rows.tfjs[i]!));
      console.log(`max |onnx - tfjs feature| ${maxAbs.toExponential(1)}`);
      out.maxAbsFeatureDiff = maxAbs;
    }
    out.loadAverageAfter = os.loadavg().map((l) => +l.toFixed(2));
    return out;
  },
};

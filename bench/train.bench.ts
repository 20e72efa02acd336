import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { initBackend } from '../src-main/engine/ml/backend.ts';
import { benchHeadsTraining } from '../src-main/engine/train/heads-bench.ts';
import { benchAugment } from '../src-main/engine/train/augment-bench.ts';
import type { Benchmark } from './index.ts';

const PHOTOS = path.resolve(import.meta.dirname, '../../shared/data/listing-photos/good');

export const trainBench: Benchmark = {
  name: 'train',
  description: 'heads-training samples/s on the backend in use; augmentation images/s against the same transforms in torchvision/PIL',
  async run() {
    const out: Record<string, unknown> = {};
    const backend = await initBackend('auto');
    const heads = await benchHeadsTraining({ backend, batchSize: 64, steps: 200, hidden: 256 });
    console.log(`heads training (${backend.name}, batch 64, 1280-d, hidden 256): ${heads.samplesPerSec.toFixed(0)} samples/s (${heads.msPerStep.toFixed(1)} ms/step)`);
    out.headsSamplesPerSec = heads.samplesPerSec;
    out.backend = backend.name;
    if (!fs.existsSync(PHOTOS)) {
      console.log(`augmentation: skipped, ${PHOTOS} (real listing photos) is absent`);
      return out;
    }
    const files = fs.readdirSync(PHOTOS).filter((f) => f.endsWith('.jpg')).sort().map((f) => path.join(PHOTOS, f));
    const workers = Math.min(8, os.cpus().length);
    const aug = await benchAugment({ files, workers, images: files.length * 2 });
    out.augmentImagesPerSec = aug.imagesPerSec;
    console.log(`augmentation (sharp, ${workers} worker threads, 224px, batch 64): ${aug.imagesPerSec.toFixed(0)} images/s, ${aug.cpuMsPerImage.toFixed(2)} CPU-ms/image`);
    const py = spawnSync('/usr/bin/python3', [path.join(import.meta.dirname, 'augment_torchvision.py'), PHOTOS, String(workers)], { encoding: 'utf8' });
    if (py.status !== 0) {
      console.log('torchvision reference: not available (apt-get install -y python3-torchvision, then run this benchmark again)');
      return out;
    }
    const ref = JSON.parse(py.stdout.trim().split('\n').pop()!) as { imagesPerSec: number };
    out.torchvisionImagesPerSec = ref.imagesPerSec;
    out.ratioVsTorchvision = aug.imagesPerSec / ref.imagesPerSec;
    console.log(`torchvision/PIL DataLoader (${workers} workers): ${ref.imagesPerSec.toFixed(0)} images/s; CarStudio / torchvision = ${(aug.imagesPerSec / ref.imagesPerSec).toFixed(2)}x (target >= 1.0x)`);
    return out;
  },
};

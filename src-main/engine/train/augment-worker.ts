// One thread of the augmentation pool: reads, decodes and augments (or eval-transforms) images
// with sharp and writes them, in the models' float32 input scaling, straight into the batch (a
// SharedArrayBuffer) the pool gave, so the thread that trains does no per-sample work.
import fs from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import { decodeRgb } from '../ml/decode.ts';
import { augmentInto, ORIGINAL_AUGMENT, writeUnitFloat } from './augment.ts';
import type { AugmentReply, AugmentRequest } from './augment-pool.ts';

if (!parentPort) throw new Error('augment-worker must run in a worker thread');
const port = parentPort;
// libvips' operation cache only pays when the same image is processed twice; every task here
// is a new image (a measured ~15% of the per-image CPU time). The setting is process-wide.
sharp.cache(false);
// One libvips thread per pipeline: many small images in flight already keep every core busy, and
// libvips' own threads on top only add hand-offs (a measured ~1 of ~5 CPU-ms per image). The
// setting is process-wide, as the dedup job's same choice is.
sharp.concurrency(1);

port.on('message', (msg: AugmentRequest) => {
  void handle(msg);
});

async function handle(msg: AugmentRequest): Promise<void> {
  try {
    // One read into memory: handing sharp the path makes it open and parse the file twice (once
    // for the header that plans the crop, once for the pixels).
    const input = typeof msg.input === 'string' ? await fs.readFile(msg.input) : Buffer.from(msg.input.buffer, msg.input.byteOffset, msg.input.byteLength);
    const out = new Float32Array(msg.out, msg.offset * Float32Array.BYTES_PER_ELEMENT, msg.size * msg.size * 3);
    if (msg.augment) await augmentInto(input, msg.size, msg.seed, msg.opts ?? ORIGINAL_AUGMENT, out);
    else writeUnitFloat(await decodeRgb(input, msg.size), out);
    const reply: AugmentReply = { id: msg.id, ok: true };
    port.postMessage(reply);
  } catch (err) {
    const e = err as Error;
    const reply: AugmentReply = { id: msg.id, ok: false, error: `${typeof msg.input === 'string' ? msg.input : 'image'}: ${e.message}` };
    port.postMessage(reply);
  }
}

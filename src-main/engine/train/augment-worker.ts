// One thread of the augmentation pool: decodes, augments (or eval-transforms) images with sharp
// and sends back 8-bit RGB, transferring the buffer (a quarter of the bytes of float32).
import { parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import { decodeRgb } from '../ml/decode.ts';
import { augmentRgb } from './augment.ts';
import type { AugmentReply, AugmentRequest } from './augment-pool.ts';

if (!parentPort) throw new Error('augment-worker must run in a worker thread');
const port = parentPort;
// libvips' operation cache only pays when the same image is processed twice; every task here
// is a new image (a measured ~15% of the per-image CPU time). The setting is process-wide.
sharp.cache(false);

port.on('message', (msg: AugmentRequest) => {
  void handle(msg);
});

async function handle(msg: AugmentRequest): Promise<void> {
  const input = typeof msg.input === 'string' ? msg.input : Buffer.from(msg.input.buffer, msg.input.byteOffset, msg.input.byteLength);
  try {
    const rgb = msg.augment ? await augmentRgb(input, msg.size, msg.seed, msg.opts) : await decodeRgb(input, msg.size);
    // A view on a pooled Buffer cannot be transferred: copy it then.
    const data = rgb.byteOffset === 0 && rgb.byteLength === rgb.buffer.byteLength ? rgb : rgb.slice();
    const reply: AugmentReply = { id: msg.id, ok: true, data };
    port.postMessage(reply, [data.buffer as ArrayBuffer]);
  } catch (err) {
    const e = err as Error;
    const reply: AugmentReply = { id: msg.id, ok: false, error: `${typeof msg.input === 'string' ? msg.input : 'image'}: ${e.message}` };
    port.postMessage(reply);
  }
}

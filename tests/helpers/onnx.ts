import { createRequire } from 'node:module';

/** Whether onnxruntime-node is installed (the clip-vit-b16 tests skip without it; CI requires it). */
export const hasOrt = (() => {
  try {
    createRequire(import.meta.url).resolve('onnxruntime-node');
    return true;
  } catch {
    return false;
  }
})();

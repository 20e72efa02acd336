// Loaded with `node --import` (through NODE_OPTIONS, which worker threads inherit): makes the
// optional dependency onnxruntime-node unresolvable, exactly as where it is not installed, so the
// tests check the "not installed" path of the clip-vit-b16 extractor on machines that have it too.
import { register } from 'node:module';

const hook = `export async function resolve(specifier, context, next) {
  if (specifier === 'onnxruntime-node' || specifier.startsWith('onnxruntime-node/')) {
    const e = new Error("Cannot find package 'onnxruntime-node' (hidden by tests/helpers/hide-onnxruntime.mjs)");
    e.code = 'ERR_MODULE_NOT_FOUND';
    throw e;
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);

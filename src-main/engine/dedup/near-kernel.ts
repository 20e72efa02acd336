/**
 * The compiled bytes of near-kernel.wat (the multi-index scan as WebAssembly, with a shared
 * memory) and the one compiled module. Regenerate after editing the .wat:
 *   npm install --prefix /tmp/wabt wabt@1.0.39 && node -e "require('/tmp/wabt/node_modules/wabt')().then((w) => {
 *     const f = { threads: true };
 *     const m = w.parseWat('k.wat', require('fs').readFileSync('src-main/engine/dedup/near-kernel.wat', 'utf8'), f);
 *     m.validate(f); console.log(Buffer.from(m.toBinary({}).buffer).toString('base64')); })"
 * tests/dedup-hash.test.ts checks this kernel against brute force and the JavaScript kernel.
 */
export const KERNEL_WASM_BASE64 =
  'AGFzbQEAAAABKQRgAn9/AX9gA39/fwBgCH9/f35/f39/AX9gDX9/f39/f39/f3x/f38AAg8BA2VudgNtZW0CAwGAgAQDBQQAAQIDBwgBBHNjYW4AAwr7BARAAQJ/AkADQCAAIAFBAnRqKAIAIQIgAiABRg0BIAAgAkECdGooAgAhAyAAIAFBAnRqIAM2AgAgAyEBDAALCyABCz0AIAAgARAAIQEgACACEAAhAiABIAJHBEAgASACSQRAIAAgAkECdGogATYCAAUgACABQQJ0aiACNgIACwsLjAEDAn8BfgF/IAQhCAJAA0AgCCAFTw0BIAAgCEEDdGopAwAhCiAIQQFqIAYgBkEASBshCQJAA0AgCSAHTw0BIAogACAJQQN0aikDAIV7IANYBEAgC0EBaiELIAIgASAIQQJ0aigCACABIAlBAnRqKAIAEAELIAlBAWohCQwACwsgCEEBaiEIDAALCyALC+sCBAh/BHwBfwF+IAitIRogCiENAkADQCANIARODQEgAyANQQJ0aigCACEOIAIgDkECdGooAgAhECACIA5BAWpBAnRqKAIAIREgESAQa7ghFSAVRAAAAAAAAPA/ZARAIBUgFUQAAAAAAADwP6GiRAAAAAAAAABAoyEWIBYgCWQEQCAYIBagIRgFIBcgFqAhFyAZIAAgASAHIBogECARQX8gERACaiEZCwtBACEUAkADQCAUIAZODQEgDiAFIBRBAnRqKAIAcyEPIA8gDksEQCACIA9BAnRqKAIAIRIgAiAPQQFqQQJ0aigCACETIBIgE0cEQCAVIBMgEmu4oiEWIBYgCWQEQCAYIBagIRgFIBcgFqAhFyAZIAAgASAHIBogECARIBIgExACaiEZCwsLIBRBAWohFAwACwsgDSALaiENDAALCyAMIAwrAwAgF6A5AwAgDCAMKwMIIBm4oDkDCCAMIAwrAxAgGKA5AxAL';

/** The few WebAssembly calls used (Node's types declare the namespace without them). */
export interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
}
export type WasmModule = object;
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: { env: { mem: WasmMemory } }) => { exports: Record<string, unknown> };
  Memory: new (d: { initial: number; maximum: number; shared: true }) => WasmMemory;
}
export const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: WasmModule | null | undefined;

/** The compiled kernel, or null where WebAssembly (with shared memory) is not available. */
export function kernelModule(): WasmModule | null {
  if (compiled === undefined) {
    try {
      if (!wasm) throw new Error('no WebAssembly');
      compiled = new wasm.Module(Buffer.from(KERNEL_WASM_BASE64, 'base64'));
      // shared memory is what the module imports: check it can be made here
      new wasm.Memory({ initial: 1, maximum: 1, shared: true });
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

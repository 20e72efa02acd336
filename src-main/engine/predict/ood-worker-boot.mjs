// Distance-reference worker entry: the worker is TypeScript, loaded through tsx like the rest of
// the engine (the same pattern as worker-boot.mjs).
import { register } from 'tsx/esm/api';

register();
await import('./ood-worker.ts');

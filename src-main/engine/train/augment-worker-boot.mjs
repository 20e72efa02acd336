// Worker-thread entry of the augmentation pool: the worker's code is TypeScript, loaded through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./augment-worker.ts');

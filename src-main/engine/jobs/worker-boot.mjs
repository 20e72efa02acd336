// Worker-thread entry: job modules are TypeScript, loaded through tsx like the rest of the engine.
import { register } from 'tsx/esm/api';

register();
await import('./worker-host.ts');

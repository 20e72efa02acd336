import type { Engine } from './engine.ts';

/**
 * Fills the demo workspace on first start so a newcomer sees real data. Each stage that can
 * contribute offline adds its step here; steps must be idempotent (they run on every start of
 * the demo workspace and do nothing once their data is there).
 */
export type DemoStep = (engine: Engine) => Promise<void>;
const steps: DemoStep[] = [];

export function addDemoStep(step: DemoStep): void {
  steps.push(step);
}

export async function prepareDemo(engine: Engine): Promise<void> {
  for (const step of steps) await step(engine);
}

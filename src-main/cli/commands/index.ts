import type { Command } from 'commander';
import { registerInit } from './init.ts';
import { registerServe } from './serve.ts';
import { registerStats } from './stats.ts';
import { registerJobs } from './jobs.ts';
import { registerVerify } from './verify.ts';
import { registerScrape } from './scrape.ts';
import { registerDemoSite } from './demo-site.ts';
import { registerDedup } from './dedup.ts';
import { registerFilter } from './filter.ts';
import { registerTrain } from './train.ts';
import { registerPredict } from './predict.ts';
import { registerRanges } from './ranges.ts';
import { registerImport } from './import.ts';
import { registerEval } from './eval.ts';
import { registerCalibrate } from './calibrate.ts';
import { registerStudy } from './study.ts';

/** Each command lives in its own file; a stage adds its registrar here. */
export function registerCommands(program: Command): void {
  registerInit(program);
  registerServe(program);
  registerStats(program);
  registerJobs(program);
  registerVerify(program);
  registerScrape(program);
  registerDemoSite(program);
  registerDedup(program);
  registerFilter(program);
  registerTrain(program);
  registerPredict(program);
  registerRanges(program);
  registerImport(program);
  registerEval(program);
  registerCalibrate(program);
  registerStudy(program);
}

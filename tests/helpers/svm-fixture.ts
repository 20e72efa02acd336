import fs from 'node:fs';
import path from 'node:path';

/** One case of tests/fixtures/svm-sklearn.json: data and what scikit-learn's SVC() made of it. */
export interface SvmFixtureCase {
  name: string;
  rows: number;
  cols: number;
  X: number[];
  y: number[];
  Xtest: number[];
  testRows: number;
  gamma: number;
  nSupport: [number, number];
  decisionTrain: number[];
  decisionTest: number[];
  predictTrain: number[];
}

/** The scikit-learn SVM fixture (how it was made: tests/filter-svm.test.ts). */
export function svmFixture(): { sklearn: string; cases: SvmFixtureCase[] } {
  return JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'svm-sklearn.json'), 'utf8')) as { sklearn: string; cases: SvmFixtureCase[] };
}

// The training loop of one run, as named steps. trainer.ts decides whether a run starts or
// resumes and writes its config; this file runs it:
//
//   const run = await TrainingRun.open(...)   the heads (+ backbone), Adam, the dropout stream and
//                                             the data order, restored from a checkpoint if any
//   run.trainStep()                           one batch: gather/augment, forward, masked losses, Adam
//   run.evaluate()                            the test split in batches, metrics summed exactly
//   run.keepBestAfterEval()                   best.ckpt at the lowest test loss
//   run.saveLast()                            last.ckpt (weights, optimizer, RNG, cursor)
//   run.close()                               workers and tensors released
//
// Determinism: the data order of epoch e is a permutation fixed by (seed, e); the augmentation of
// the j-th sample of step s by (seed, s, j); dropout masks come from a seeded stream whose state
// is checkpointed. So a resumed run computes the same steps as an uninterrupted one.
import fs from 'node:fs';
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import type { TfModule } from '../ml/backend.ts';
import { UserError } from '../workspace/errors.ts';
import { AugmentPool, PrefetchLoader, type AugmentTask } from './augment-pool.ts';
import { writeCheckpoint, writeFileAtomic, type NamedArray, type readCheckpoint } from './checkpoint.ts';
import type { LabelColumns } from './labels.ts';
import { addBatchMetrics, lossesAndCounts, medianHeadOf, METRIC_COUNT, metricsFromSums, type Backbone, type BatchLabels, type Heads, type Metrics } from './model.ts';
import { epochPermutation, mixSeed, Rng } from './rng.ts';
import type { CheckpointMeta, EvalEvent, FeatureSplit, RunSummary, StepEvent, TrainConfig, TrainInputs, TrainResult } from './trainer.ts';
import { buildRunHeads, featureColumnStats, featureDimOf, RUN_FILES, splitSize } from './trainer.ts';

type Checkpoint = Awaited<ReturnType<typeof readCheckpoint<CheckpointMeta>>>;

/** Runs `cfg.steps` steps of a run (from its checkpoint when given) and records them in runDir. */
export async function runLoop(runDir: string, cfg: TrainConfig, inputs: TrainInputs, ckpt: Checkpoint | null): Promise<TrainResult> {
  const run = TrainingRun.open(runDir, cfg, inputs, ckpt);
  let stopped = false;
  try {
    await run.writeSummary('running');
    await inputs.onStart?.({ step: run.step, steps: cfg.steps, resumedFrom: ckpt ? ckpt.meta.step : null });
    while (run.step < cfg.steps) {
      if (inputs.signal?.aborted) {
        stopped = true;
        break;
      }
      const ev = await run.trainStep();
      await inputs.onStep?.(ev);
      const last = run.step === cfg.steps;
      if (run.step % cfg.evalEvery === 0 || last) {
        const evaluated = await run.evaluateAndKeepBest();
        if (evaluated) await inputs.onEval?.(evaluated);
      }
      if (run.step % cfg.checkpointEvery === 0 || last) {
        await run.saveLast();
        await run.writeSummary('running');
      }
    }
    if (run.step !== run.lastSaved) await run.saveLast();
    await run.writeSummary(stopped ? 'stopped' : 'done');
  } finally {
    await run.close();
  }
  return {
    runDir,
    state: stopped ? 'stopped' : 'done',
    step: run.step,
    resumedFrom: ckpt ? ckpt.meta.step : null,
    lastTrain: run.lastTrain,
    lastEval: run.lastEval,
    best: run.best,
  };
}

interface TrainVar {
  key: string;
  variable: TF.Variable;
}

/** The state of a run being trained, and its steps. */
class TrainingRun {
  step = 0;
  lastSaved = -1;
  best: { step: number; loss: number } | null = null;
  lastTrain: Metrics | null = null;
  lastEval: EvalEvent | null = null;
  private rng: Rng;
  private readonly durations: number[] = [];
  private readonly metricsFile: string;

  private constructor(
    private readonly runDir: string,
    private readonly cfg: TrainConfig,
    private readonly inputs: TrainInputs,
    private readonly tf: TfModule,
    private readonly heads: Heads,
    private readonly backbone: Backbone | null,
    private readonly adam: Adam,
    private readonly order: DataOrder,
    private readonly images: ImageFeed | null,
  ) {
    this.rng = new Rng(mixSeed(cfg.seed, 0xd409));
    this.metricsFile = path.join(runDir, RUN_FILES.metrics);
  }

  /** Builds the model and optimizer, restores the checkpoint's state, and prepares the data feed. */
  static open(runDir: string, cfg: TrainConfig, inputs: TrainInputs, ckpt: Checkpoint | null): TrainingRun {
    const tf = inputs.backend.tf;
    const data = inputs.data;
    const nTrain = splitSize(data, 'train');
    if (nTrain === 0) throw new UserError('the training split is empty');
    const heads = buildRunHeads(tf, cfg, inputs.space, featureDimOf(data));
    const backbone = data.mode === 'finetune' ? data.backbone : null;
    // a new heads run's input standardisation comes from its training rows (a resumed one's from its checkpoint)
    if (data.mode === 'heads' && cfg.inputNorm === 'standard' && !ckpt) {
      const { mean, scale } = featureColumnStats(data.train);
      heads.setInputNorm(mean, scale);
    }
    const trainVars: TrainVar[] = [...heads.vars].filter(([, v]) => v.trainable).map(([k, variable]) => ({ key: `heads/${k}`, variable }));
    if (backbone) backbone.model.trainableWeights.forEach((w, i) => trainVars.push({ key: `backbone/${i}`, variable: w.read() as TF.Variable }));
    const adam = new Adam(tf, trainVars, cfg.lr, cfg.adam, cfg.weightDecay ?? 0);
    const order = new DataOrder(cfg.seed, cfg.batchSize, nTrain);
    const images = data.mode === 'finetune' ? new ImageFeed(cfg, data, order) : null;
    const run = new TrainingRun(runDir, cfg, inputs, tf, heads, backbone, adam, order, images);
    if (ckpt) run.restore(ckpt);
    return run;
  }

  private restore(ckpt: Checkpoint): void {
    this.step = ckpt.meta.step;
    this.lastSaved = ckpt.meta.step;
    this.rng = new Rng(ckpt.meta.rng);
    this.best = ckpt.meta.best;
    this.adam.step = ckpt.meta.adamStep;
    restoreTensors(this.tf, ckpt.tensors, this.heads, this.backbone, this.adam);
  }

  /** One optimizer step on the next batch; logs it and returns its event. */
  async trainStep(): Promise<StepEvent> {
    const { tf, cfg } = this;
    const t0 = performance.now();
    const s = this.step;
    const idx = this.order.batchIndices(s);
    const xBuf = await this.trainInputs(s, idx);
    const dropoutSeed = this.rng.nextUint32();
    const vec = tf.tidy(() => {
      const x = tf.tensor(xBuf, this.inputShape(idx.length));
      const labels = labelTensors(tf, this.inputs.data.train.labels, idx);
      let metrics: TF.Tensor1D | null = null;
      const { grads } = tf.variableGrads(
        () => {
          const r = lossesAndCounts(tf, this.forward(x, true, dropoutSeed), labels, cfg.lossWeights, medianHeadOf(cfg));
          metrics = tf.keep(r.metrics);
          return r.total;
        },
        this.adam.vars.map((v) => v.variable),
      );
      this.adam.apply(grads);
      return metrics!;
    });
    const vals = await vec.data();
    vec.dispose();
    this.step = s + 1;
    const sums = new Float64Array(METRIC_COUNT);
    addBatchMetrics(sums, vals, idx.length);
    this.lastTrain = metricsFromSums(sums, idx.length, cfg.lossWeights);
    const perStep = this.stepSeconds(performance.now() - t0);
    const ev: StepEvent = {
      step: this.step,
      steps: cfg.steps,
      epoch: this.order.epochAt(s),
      train: this.lastTrain,
      samplesPerSec: cfg.batchSize / perStep,
      etaSec: (cfg.steps - this.step) * perStep,
    };
    this.logLine({ t: 'train', step: this.step, ...this.lastTrain, samplesPerSec: ev.samplesPerSec });
    return ev;
  }

  /** Evaluates on the test split (when it has rows), logs it, and writes best.ckpt at a new lowest test loss. */
  async evaluateAndKeepBest(): Promise<EvalEvent | null> {
    if (splitSize(this.inputs.data, 'test') === 0) return null;
    const test = await this.evaluate();
    if (!test) return null;
    const isBest = this.best === null || test.loss < this.best.loss;
    if (isBest) this.best = { step: this.step, loss: test.loss };
    this.lastEval = { step: this.step, test, best: isBest };
    this.logLine({ t: 'eval', step: this.step, ...test, best: isBest });
    if (isBest) await this.save(path.join(this.runDir, RUN_FILES.best));
    return this.lastEval;
  }

  /** The metrics of the test split, summed over batches of evalBatchSize; null when cancelled midway. */
  async evaluate(): Promise<Metrics | null> {
    const { tf, cfg } = this;
    const data = this.inputs.data;
    const nTest = splitSize(data, 'test');
    const sums = new Float64Array(METRIC_COUNT);
    const EB = cfg.evalBatchSize;
    const nb = Math.ceil(nTest / EB);
    const idxOf = (k: number): Int32Array => Int32Array.from({ length: Math.min(EB, nTest - k * EB) }, (_, j) => k * EB + j);
    const loader = this.images?.testLoader(nb, idxOf) ?? null;
    for (let k = 0; k < nb; k++) {
      if (this.inputs.signal?.aborted) {
        loader?.clear();
        return null;
      }
      const idx = idxOf(k);
      let x: Float32Array;
      if (data.mode === 'heads') {
        x = new Float32Array(idx.length * data.test.dim);
        gatherRows(data.test, idx, x);
      } else {
        x = (await loader!.get(k)).data;
      }
      const vec = tf.tidy(() => {
        const labels = labelTensors(tf, data.test.labels, idx);
        return lossesAndCounts(tf, this.forward(tf.tensor(x, this.inputShape(idx.length)), false, 0), labels, cfg.lossWeights, medianHeadOf(cfg)).metrics;
      });
      const vals = await vec.data();
      vec.dispose();
      addBatchMetrics(sums, vals, idx.length);
    }
    return metricsFromSums(sums, nTest, cfg.lossWeights);
  }

  async saveLast(): Promise<void> {
    await this.save(path.join(this.runDir, RUN_FILES.last));
    this.lastSaved = this.step;
  }

  async writeSummary(state: RunSummary['state']): Promise<void> {
    const s: RunSummary = {
      state,
      step: this.step,
      steps: this.cfg.steps,
      lastTrain: this.lastTrain,
      lastEval: this.lastEval,
      best: this.best,
      updatedAt: new Date().toISOString(),
    };
    await writeFileAtomic(path.join(this.runDir, RUN_FILES.summary), JSON.stringify(s, null, 2));
  }

  async close(): Promise<void> {
    await this.images?.close();
    this.heads.dispose();
    this.adam.dispose();
  }

  // ---- pieces of the steps ----

  /** The batch's input floats: cached feature rows (heads) or augmented images (finetune). */
  private async trainInputs(s: number, idx: Int32Array): Promise<Float32Array> {
    const data = this.inputs.data;
    if (data.mode === 'finetune') return this.images!.trainBatch(s);
    const x = new Float32Array(idx.length * data.train.dim);
    gatherRows(data.train, idx, x);
    return x;
  }

  private forward(x: TF.Tensor, training: boolean, dropoutSeed: number) {
    const bb = this.backbone;
    const feats = bb ? (bb.model.apply(x, { training }) as TF.Tensor2D) : (x as TF.Tensor2D);
    return this.heads.forward(feats, training, dropoutSeed, bb !== null);
  }

  private inputShape(n: number): number[] {
    const bb = this.backbone;
    return bb ? [n, bb.inputSize, bb.inputSize, 3] : [n, featureDimOf(this.inputs.data)];
  }

  /** Seconds per step over the last 20 steps (data loading included). */
  private stepSeconds(ms: number): number {
    this.durations.push(ms);
    if (this.durations.length > 20) this.durations.shift();
    return this.durations.reduce((a, b) => a + b, 0) / this.durations.length / 1000;
  }

  private logLine(obj: object): void {
    fs.appendFileSync(this.metricsFile, `${JSON.stringify(obj)}\n`);
  }

  private async save(file: string): Promise<void> {
    const meta: CheckpointMeta = {
      format: 1,
      mode: this.cfg.mode,
      step: this.step,
      cursor: this.order.cursorAt(this.step),
      rng: this.rng.state,
      adamStep: this.adam.step,
      best: this.best,
      savedAt: new Date().toISOString(),
    };
    await writeCheckpoint(file, meta, await collectTensors(this.heads, this.backbone, this.adam));
  }
}

/** Which training samples step s uses: epoch permutations fixed by the seed, walked batch by batch. */
class DataOrder {
  private readonly perms = new Map<number, Int32Array>();

  constructor(
    private readonly seed: number,
    private readonly batchSize: number,
    private readonly n: number,
  ) {}

  private perm(epoch: number): Int32Array {
    let p = this.perms.get(epoch);
    if (!p) {
      p = epochPermutation(this.seed, epoch, this.n);
      this.perms.set(epoch, p);
      for (const k of this.perms.keys()) if (k < epoch - 1) this.perms.delete(k);
    }
    return p;
  }

  batchIndices(s: number): Int32Array {
    const B = this.batchSize;
    const idx = new Int32Array(B);
    for (let j = 0; j < B; j++) {
      const g = s * B + j;
      idx[j] = this.perm(Math.floor(g / this.n))[g % this.n];
    }
    return idx;
  }

  /** Where the data order stands before step s: epoch and position in its permutation. */
  cursorAt(s: number): { epoch: number; pos: number } {
    return { epoch: Math.floor((s * this.batchSize) / this.n), pos: (s * this.batchSize) % this.n };
  }

  /** Epochs done before step s (fractional). */
  epochAt(s: number): number {
    return (s * this.batchSize) / this.n;
  }
}

/** finetune: augmented training batches and plain test batches, decoded ahead by a worker pool. */
class ImageFeed {
  private readonly pool: AugmentPool;
  private readonly ownPool: boolean;
  private readonly train: PrefetchLoader;

  constructor(
    private readonly cfg: TrainConfig,
    private readonly data: Extract<TrainInputs['data'], { mode: 'finetune' }>,
    order: DataOrder,
  ) {
    this.ownPool = !data.pool;
    this.pool = data.pool ?? new AugmentPool(data.poolSize);
    const S = data.backbone.inputSize;
    const list = data.train.inputs;
    this.train = new PrefetchLoader(
      this.pool,
      (k) =>
        k >= cfg.steps
          ? null
          : [...order.batchIndices(k)].map(
              (i, j): AugmentTask => ({ input: list[i], size: S, seed: mixSeed(cfg.seed, 0xa06, k, j), augment: cfg.augment, opts: cfg.augmentOptions }),
            ),
      cfg.prefetch,
    );
  }

  async trainBatch(s: number): Promise<Float32Array> {
    return (await this.train.get(s)).data;
  }

  testLoader(nb: number, idxOf: (k: number) => Int32Array): PrefetchLoader {
    const S = this.data.backbone.inputSize;
    const list = this.data.test.inputs;
    return new PrefetchLoader(
      this.pool,
      (k) => (k >= nb ? null : [...idxOf(k)].map((i) => ({ input: list[i], size: S, seed: 0, augment: false }))),
      this.cfg.prefetch,
    );
  }

  async close(): Promise<void> {
    this.train.clear();
    if (this.ownPool) await this.pool.close();
  }
}

/** Rows idx of a split into out (idx.length * dim floats). */
function gatherRows(split: FeatureSplit, idx: ArrayLike<number>, out: Float32Array): void {
  const f = split.features;
  if (!(f instanceof Float32Array)) return f.gather(idx, out);
  const dim = split.dim;
  for (let j = 0; j < idx.length; j++) out.set(f.subarray(idx[j] * dim, (idx[j] + 1) * dim), j * dim);
}

/** The labels and masks of samples idx, as tensors. */
function labelTensors(tf: TfModule, labels: LabelColumns, idx: ArrayLike<number>): BatchLabels {
  const pick = <A extends Int32Array | Float32Array>(col: A, make: (n: number) => A): A => {
    const out = make(idx.length);
    for (let j = 0; j < idx.length; j++) out[j] = col[idx[j]];
    return out;
  };
  const ints = (col: Int32Array): TF.Tensor1D => tf.tensor1d(pick(col, (n) => new Int32Array(n)), 'int32');
  const floats = (col: Float32Array): TF.Tensor1D => tf.tensor1d(pick(col, (n) => new Float32Array(n)));
  return {
    priceBin: ints(labels.priceBin),
    median: floats(labels.median),
    makeModel: ints(labels.makeModel),
    year: ints(labels.year),
    priceMask: floats(labels.priceMask),
    makeModelMask: floats(labels.makeModelMask),
    yearMask: floats(labels.yearMask),
  };
}

/** Adam (Kingma & Ba, with PyTorch's epsilon placement), its state kept by our variable keys. */
class Adam {
  step = 0;
  readonly m = new Map<string, TF.Variable>();
  readonly v = new Map<string, TF.Variable>();

  constructor(
    private readonly tf: TfModule,
    readonly vars: readonly TrainVar[],
    private readonly lr: number,
    private readonly c: TrainConfig['adam'],
    /** AdamW's decoupled decay of the heads' kernels (not biases, not the backbone), per unit of lr. */
    private readonly weightDecay = 0,
  ) {
    for (const { key, variable } of vars) {
      this.m.set(key, tf.variable(tf.zerosLike(variable), false));
      this.v.set(key, tf.variable(tf.zerosLike(variable), false));
    }
  }

  apply(grads: TF.NamedTensorMap): void {
    const tf = this.tf;
    this.step++;
    const { beta1: b1, beta2: b2, epsilon } = this.c;
    const bc1 = 1 - b1 ** this.step;
    const sqrtBc2 = Math.sqrt(1 - b2 ** this.step);
    tf.tidy(() => {
      for (const { key, variable } of this.vars) {
        const g = grads[variable.name];
        if (!g) continue;
        const m = this.m.get(key)!;
        const v = this.v.get(key)!;
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBc2), epsilon);
        const decayed = this.weightDecay > 0 && /^heads\/.*kernel$/.test(key) ? tf.mul(variable, 1 - this.lr * this.weightDecay) : variable;
        variable.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), this.lr / bc1)));
      }
    });
  }

  dispose(): void {
    this.m.forEach((t) => t.dispose());
    this.v.forEach((t) => t.dispose());
  }
}

async function collectTensors(heads: Heads, backbone: Backbone | null, adam: Adam): Promise<NamedArray[]> {
  const out: NamedArray[] = [];
  const add = async (name: string, t: TF.Tensor): Promise<void> => {
    out.push({ name, shape: [...t.shape], data: (await t.data()) as Float32Array });
  };
  for (const [k, v] of heads.vars) await add(`heads/${k}`, v);
  if (backbone) {
    const ws = backbone.model.weights;
    for (let i = 0; i < ws.length; i++) await add(`backbone.w/${i}`, ws[i].read());
  }
  for (const [k, v] of adam.m) await add(`adam.m/${k}`, v);
  for (const [k, v] of adam.v) await add(`adam.v/${k}`, v);
  return out;
}

function restoreTensors(tf: TfModule, tensors: Map<string, NamedArray>, heads: Heads, backbone: Backbone | null, adam: Adam): void {
  const get = (name: string, shape: readonly number[]): TF.Tensor => {
    const t = tensors.get(name);
    if (!t) throw new Error(`checkpoint lacks ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`checkpoint ${name} has shape [${t.shape}], the model [${shape}]`);
    }
    return tf.tensor(t.data, t.shape);
  };
  tf.tidy(() => {
    for (const [k, v] of heads.vars) v.assign(get(`heads/${k}`, v.shape));
    if (backbone) backbone.model.setWeights(backbone.model.weights.map((w, i) => get(`backbone.w/${i}`, w.shape as number[])));
    for (const [k, v] of adam.m) v.assign(get(`adam.m/${k}`, v.shape));
    for (const [k, v] of adam.v) v.assign(get(`adam.v/${k}`, v.shape));
  });
}

// Seeded, serialisable randomness for training. Two kinds:
// - `Rng`: a sequential stream (sfc32) whose whole state is four uint32s, saved in checkpoints;
// - `mixSeed(...)`: a counter-based hash, so that the data order of an epoch and the augmentation
//   of the i-th sample of step s are pure functions of (seed, epoch) / (seed, step, i). Prefetching
//   batches ahead therefore never changes what a step sees, and a resumed run sees the same.

export type RngState = [number, number, number, number];

/** A 32-bit avalanche hash of the seed and any number of integer counters. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    let k = Math.floor(p) >>> 0;
    // Fold in the high bits of values beyond 32 bits (steps never get there, seeds might).
    const hi = Math.floor(p / 2 ** 32) >>> 0;
    k ^= Math.imul(hi, 0x85ebca6b);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number | RngState) {
    if (Array.isArray(seed)) {
      [this.a, this.b, this.c, this.d] = seed.map((v) => v >>> 0) as RngState;
    } else {
      this.a = mixSeed(seed, 1);
      this.b = mixSeed(seed, 2);
      this.c = mixSeed(seed, 3);
      this.d = 1;
      for (let i = 0; i < 12; i++) this.nextUint32();
    }
  }

  get state(): RngState {
    return [this.a, this.b, this.c, this.d];
  }

  /** sfc32 */
  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 2 ** 32;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: unknown }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }
}

/** The order in which an epoch visits n samples: a permutation fixed by (seed, epoch). */
export function epochPermutation(seed: number, epoch: number, n: number): Int32Array {
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  return new Rng(mixSeed(seed, 0x0e90c4, epoch)).shuffle(perm);
}

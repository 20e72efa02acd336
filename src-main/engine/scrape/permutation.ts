/**
 * A keyed pseudo-random permutation of the integers [min, max], computed on demand.
 *
 * Construction: a balanced Feistel network over 2h bits (h = ceil(bits(n-1) / 2), at least 1),
 * with 6 rounds whose round function is a 32-bit integer hash of (half, round key). A Feistel
 * network is a bijection of [0, 2^(2h)) whatever its round function; cycle-walking (re-applying
 * it until the value falls below n) restricts it to a bijection of [0, n). The domain is below
 * 4n, so the expected walk is under 4 steps. Works for any n up to 2^53 with plain numbers:
 * the two halves stay below 2^27 and are only combined when the result is known to be < n.
 */

import { mix32 } from '../util/random.ts';

const ROUNDS = 6;

export class IdPermutation {
  readonly size: number;
  private readonly min: number;
  private readonly halfBits: number;
  private readonly halfSize: number; // 2^halfBits
  private readonly halfMask: number;
  private readonly keys: number[];
  private readonly nHi: number; // floor(size / halfSize)
  private readonly nLo: number; // size % halfSize

  constructor(min: number, max: number, seed: number) {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max)) throw new RangeError('IdPermutation: min and max must be safe integers');
    if (max < min) throw new RangeError(`IdPermutation: max (${max}) < min (${min})`);
    const size = max - min + 1;
    if (size > 2 ** 53) throw new RangeError('IdPermutation: range larger than 2^53');
    if (!Number.isFinite(seed)) throw new RangeError('IdPermutation: seed must be finite');
    this.size = size;
    this.min = min;
    let bits = 0;
    while (2 ** bits < size) bits++;
    this.halfBits = Math.max(1, Math.ceil(bits / 2));
    this.halfSize = 2 ** this.halfBits;
    this.halfMask = this.halfSize - 1;
    this.nHi = Math.floor(size / this.halfSize);
    this.nLo = size % this.halfSize;
    // Derive round keys from every bit of the seed (integer part split in 32-bit words, plus fraction).
    const s = Math.trunc(seed);
    const lo = Number(BigInt.asUintN(32, BigInt(s)));
    const hi = Number(BigInt.asUintN(32, BigInt(s) >> 32n));
    const frac = Math.floor((Math.abs(seed) - Math.abs(s)) * 2 ** 32) >>> 0;
    let k = mix32(lo ^ mix32(hi ^ mix32(frac ^ 0x9e3779b9)));
    this.keys = [];
    for (let r = 0; r < ROUNDS; r++) {
      k = mix32(k + 0x6d2b79f5 + r);
      this.keys.push(k);
    }
  }

  private round(half: number, r: number): number {
    return mix32(mix32(half ^ this.keys[r]) + this.keys[(r + 3) % ROUNDS]) & this.halfMask;
  }

  /** The id at position `index` (0 <= index < size) of the permutation, in [min, max]. */
  at(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`IdPermutation.at: index ${index} outside [0, ${this.size})`);
    }
    let left = Math.floor(index / this.halfSize);
    let right = index % this.halfSize;
    for (;;) {
      for (let r = 0; r < ROUNDS; r++) {
        const next = left ^ this.round(right, r);
        left = right;
        right = next;
      }
      // value = left * halfSize + right; accept when < size (compared without overflow).
      if (left < this.nHi || (left === this.nHi && right < this.nLo)) {
        return this.min + left * this.halfSize + right;
      }
    }
  }
}

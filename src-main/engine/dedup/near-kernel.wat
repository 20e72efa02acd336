;; The multi-index scan of near-index.ts as WebAssembly: i64.popcnt is one machine instruction,
;; where JavaScript needs two 32-bit SWAR popcounts per comparison. near-kernel.ts holds the
;; compiled bytes; regenerate them after editing this file with the command in near-kernel.ts.
;;
;; Memory (shared, imported) holds, per chunk table: the sorted 64-bit hashes (i64), their
;; distinct-hash index (i32), the bucket offsets (i32, 65537), the non-empty buckets (i32) and the
;; masks (i32); plus one union-find parent array (i32) per thread and three f64 counters.
(module
  (import "env" "mem" (memory 1 65536 shared))

  (func $find (param $p i32) (param $x i32) (result i32)
    (local $px i32)
    (local $ppx i32)
    (block $done
      (loop $l
        (local.set $px (i32.load (i32.add (local.get $p) (i32.shl (local.get $x) (i32.const 2)))))
        (br_if $done (i32.eq (local.get $px) (local.get $x)))
        (local.set $ppx (i32.load (i32.add (local.get $p) (i32.shl (local.get $px) (i32.const 2)))))
        (i32.store (i32.add (local.get $p) (i32.shl (local.get $x) (i32.const 2))) (local.get $ppx))
        (local.set $x (local.get $ppx))
        (br $l)))
    (local.get $x))

  (func $union (param $p i32) (param $a i32) (param $b i32)
    (local.set $a (call $find (local.get $p) (local.get $a)))
    (local.set $b (call $find (local.get $p) (local.get $b)))
    (if (i32.ne (local.get $a) (local.get $b))
      (then
        (if (i32.lt_u (local.get $a) (local.get $b))
          (then (i32.store (i32.add (local.get $p) (i32.shl (local.get $b) (i32.const 2))) (local.get $a)))
          (else (i32.store (i32.add (local.get $p) (i32.shl (local.get $a) (i32.const 2))) (local.get $b)))))))

  ;; Compares sorted items [i0, i1) with [j0, j1) (j0 < 0: the same bucket, j from i + 1);
  ;; unions the pairs within D. Returns how many it found.
  (func $block (param $h i32) (param $idx i32) (param $p i32) (param $D i64)
                (param $i0 i32) (param $i1 i32) (param $j0 i32) (param $j1 i32) (result i32)
    (local $i i32)
    (local $j i32)
    (local $hi i64)
    (local $found i32)
    (local.set $i (local.get $i0))
    (block $iend
      (loop $iloop
        (br_if $iend (i32.ge_u (local.get $i) (local.get $i1)))
        (local.set $hi (i64.load (i32.add (local.get $h) (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $j
          (select (i32.add (local.get $i) (i32.const 1)) (local.get $j0) (i32.lt_s (local.get $j0) (i32.const 0))))
        (block $jend
          (loop $jloop
            (br_if $jend (i32.ge_u (local.get $j) (local.get $j1)))
            (if (i64.le_u
                  (i64.popcnt (i64.xor (local.get $hi) (i64.load (i32.add (local.get $h) (i32.shl (local.get $j) (i32.const 3))))))
                  (local.get $D))
              (then
                (local.set $found (i32.add (local.get $found) (i32.const 1)))
                (call $union (local.get $p)
                  (i32.load (i32.add (local.get $idx) (i32.shl (local.get $i) (i32.const 2))))
                  (i32.load (i32.add (local.get $idx) (i32.shl (local.get $j) (i32.const 2)))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jloop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $iloop)))
    (local.get $found))

  ;; One chunk table: non-empty buckets start, start + step, ...; for each, its own pairs and the
  ;; pairs with bucket k ^ mask (k ^ mask > k). A bucket pair over maxPairs is skipped and counted.
  ;; Adds comparisons, verified and skipped pairs to the f64 counters at $cnt.
  (func (export "scan") (param $h i32) (param $idx i32) (param $off i32) (param $nonEmpty i32) (param $ne i32)
                        (param $masks i32) (param $nm i32) (param $p i32) (param $D i32) (param $maxPairs f64)
                        (param $start i32) (param $step i32) (param $cnt i32)
    (local $e i32)
    (local $k i32)
    (local $k2 i32)
    (local $a0 i32)
    (local $a1 i32)
    (local $b0 i32)
    (local $b1 i32)
    (local $mi i32)
    (local $na f64)
    (local $pairs f64)
    (local $comps f64)
    (local $skipped f64)
    (local $found i32)
    (local $D64 i64)
    (local.set $D64 (i64.extend_i32_u (local.get $D)))
    (local.set $e (local.get $start))
    (block $eend
      (loop $eloop
        (br_if $eend (i32.ge_s (local.get $e) (local.get $ne)))
        (local.set $k (i32.load (i32.add (local.get $nonEmpty) (i32.shl (local.get $e) (i32.const 2)))))
        (local.set $a0 (i32.load (i32.add (local.get $off) (i32.shl (local.get $k) (i32.const 2)))))
        (local.set $a1 (i32.load (i32.add (local.get $off) (i32.shl (i32.add (local.get $k) (i32.const 1)) (i32.const 2)))))
        (local.set $na (f64.convert_i32_u (i32.sub (local.get $a1) (local.get $a0))))
        ;; the bucket's own pairs
        (if (f64.gt (local.get $na) (f64.const 1))
          (then
            (local.set $pairs (f64.div (f64.mul (local.get $na) (f64.sub (local.get $na) (f64.const 1))) (f64.const 2)))
            (if (f64.gt (local.get $pairs) (local.get $maxPairs))
              (then (local.set $skipped (f64.add (local.get $skipped) (local.get $pairs))))
              (else
                (local.set $comps (f64.add (local.get $comps) (local.get $pairs)))
                (local.set $found (i32.add (local.get $found)
                  (call $block (local.get $h) (local.get $idx) (local.get $p) (local.get $D64)
                    (local.get $a0) (local.get $a1) (i32.const -1) (local.get $a1))))))))
        ;; the pairs with each neighbouring bucket
        (local.set $mi (i32.const 0))
        (block $mend
          (loop $mloop
            (br_if $mend (i32.ge_s (local.get $mi) (local.get $nm)))
            (local.set $k2 (i32.xor (local.get $k) (i32.load (i32.add (local.get $masks) (i32.shl (local.get $mi) (i32.const 2))))))
            (if (i32.gt_u (local.get $k2) (local.get $k))
              (then
                (local.set $b0 (i32.load (i32.add (local.get $off) (i32.shl (local.get $k2) (i32.const 2)))))
                (local.set $b1 (i32.load (i32.add (local.get $off) (i32.shl (i32.add (local.get $k2) (i32.const 1)) (i32.const 2)))))
                (if (i32.ne (local.get $b0) (local.get $b1))
                  (then
                    (local.set $pairs (f64.mul (local.get $na) (f64.convert_i32_u (i32.sub (local.get $b1) (local.get $b0)))))
                    (if (f64.gt (local.get $pairs) (local.get $maxPairs))
                      (then (local.set $skipped (f64.add (local.get $skipped) (local.get $pairs))))
                      (else
                        (local.set $comps (f64.add (local.get $comps) (local.get $pairs)))
                        (local.set $found (i32.add (local.get $found)
                          (call $block (local.get $h) (local.get $idx) (local.get $p) (local.get $D64)
                            (local.get $a0) (local.get $a1) (local.get $b0) (local.get $b1))))))))))
            (local.set $mi (i32.add (local.get $mi) (i32.const 1)))
            (br $mloop)))
        (local.set $e (i32.add (local.get $e) (local.get $step)))
        (br $eloop)))
    (f64.store (local.get $cnt) (f64.add (f64.load (local.get $cnt)) (local.get $comps)))
    (f64.store offset=8 (local.get $cnt) (f64.add (f64.load offset=8 (local.get $cnt)) (f64.convert_i32_u (local.get $found))))
    (f64.store offset=16 (local.get $cnt) (f64.add (f64.load offset=16 (local.get $cnt)) (local.get $skipped)))))

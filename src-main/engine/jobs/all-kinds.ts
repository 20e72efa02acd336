// Every job kind registers itself when its definition module is imported; each stage adds one line.
import '../store/verify-kind.ts';
import '../scrape/scrape-kind.ts';
import '../dedup/dedup-kind.ts';
import '../predict/predict-kind.ts';
import '../filter/filter-kinds.ts';
import '../train/train-kind.ts';
import '../import/import-kind.ts';
import '../eval/eval-kind.ts';
import '../train/calibrate-kind.ts';

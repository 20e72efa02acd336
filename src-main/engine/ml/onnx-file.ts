// Checks on a model file that need no ONNX Runtime and never block: that a path is a regular file
// (a FIFO, device or socket would block the reader forever, or never end), opened without
// blocking, and that its bytes have the top-level structure of an ONNX ModelProto (protobuf
// fields of the right kinds, an ir_version, a graph, lengths that add up to the file's size).
// Reading that structure costs a few small reads even for a large model: the graph is skipped
// by its length. ONNX Runtime's own load (clip.ts) is the full check.
import fs from 'node:fs';
import { UserError } from '../workspace/errors.ts';

/** The most a single ONNX file can hold (protobuf's 2 GiB limit; bigger models keep their weights in external data files). */
export const ONNX_MAX_BYTES = 2 ** 31 - 1;
/** Smaller than any model with a graph that computes anything. */
export const ONNX_MIN_BYTES = 1024;

/** What kind of file system object a stat describes, for messages. */
export function kindOf(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/**
 * Opens `file` for reading only if it is a regular file (following symbolic links), with
 * O_NONBLOCK so that even a FIFO swapped in after the check cannot block the open; the open file
 * is checked again (fstat) against what was checked. The caller closes the fd.
 */
export function openRegularFile(file: string, what: string): { fd: number; size: number } {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new UserError(`${what} ${file} cannot be read: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new UserError(`${what} ${file} is ${kindOf(st)}, not a regular file: give the path of the .onnx file itself`);
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const now = fs.fstatSync(fd);
    if (!now.isFile() || now.ino !== st.ino || now.dev !== st.dev) throw new UserError(`${what} ${file} changed while it was being opened; try again`);
    return { fd, size: now.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Why a file of this size cannot be an ONNX model, or null. */
export function onnxSizeProblem(size: number): string | null {
  if (size < ONNX_MIN_BYTES) return `it is ${size} bytes, too small to be an ONNX model`;
  if (size > ONNX_MAX_BYTES) return `it is ${(size / 2 ** 30).toFixed(1)} GiB, more than a single ONNX file can hold (2 GiB)`;
  return null;
}

// ModelProto's fields (onnx.proto) and their protobuf wire types (0 varint, 2 length-delimited)
const MODEL_FIELDS = new Map<number, number>([
  [1, 0], // ir_version
  [2, 2], // producer_name
  [3, 2], // producer_version
  [4, 2], // domain
  [5, 0], // model_version
  [6, 2], // doc_string
  [7, 2], // graph
  [8, 2], // opset_import
  [14, 2], // metadata_props
  [20, 2], // training_info
  [25, 2], // functions
]);

/**
 * Why the open file `fd` (of `size` bytes) is not an ONNX model, or null when its top level is a
 * well-formed ModelProto with an ir_version and a graph. Fields a newer ONNX may add are allowed
 * when well-formed.
 */
export function onnxStructureProblem(fd: number, size: number): string | null {
  const sizeProblem = onnxSizeProblem(size);
  if (sizeProblem) return sizeProblem;
  const win = Buffer.alloc(32);
  let pos = 0;
  let irVersion: number | null = null;
  let graphs = 0;
  let fields = 0;
  while (pos < size) {
    const got = fs.readSync(fd, win, 0, win.length, pos);
    let at = 0;
    const varint = (): number | null => {
      let v = 0;
      for (let shift = 0; shift < 64; shift += 7) {
        if (at >= got) return null;
        const b = win[at++]!;
        v += (b & 0x7f) * 2 ** shift;
        if ((b & 0x80) === 0) return v;
      }
      return null;
    };
    const tag = varint();
    if (tag === null) return `byte ${pos}: a truncated protobuf field, so not an ONNX model`;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    const known = MODEL_FIELDS.get(field);
    if (field === 0 || (known !== undefined && known !== wire) || (known === undefined && (fields === 0 || ![0, 1, 2, 5].includes(wire)))) {
      return `byte ${pos} is not a field of an ONNX ModelProto, so not an ONNX model`;
    }
    fields++;
    if (wire === 0) {
      const v = varint();
      if (v === null) return `byte ${pos}: a truncated protobuf value, so not an ONNX model`;
      if (field === 1) irVersion = v;
      pos += at;
    } else if (wire === 1 || wire === 5) {
      pos += at + (wire === 1 ? 8 : 4);
    } else {
      const len = varint();
      if (len === null) return `byte ${pos}: a truncated protobuf length, so not an ONNX model`;
      if (pos + at + len > size) return `byte ${pos}: a field of ${len} bytes runs past the end of the file (truncated, or not an ONNX model)`;
      if (field === 7) {
        if (len === 0) return 'its graph is empty';
        graphs++;
      }
      pos += at + len;
    }
    if (pos > size) return 'the last field runs past the end of the file (truncated, or not an ONNX model)';
  }
  if (irVersion === null || irVersion < 3) return 'it has no ONNX ir_version, so not an ONNX model';
  if (graphs !== 1) return graphs === 0 ? 'it has no graph, so not an ONNX model' : 'it has more than one graph, so not an ONNX model';
  return null;
}

/** onnxStructureProblem for a path: regular files only, opened without blocking. */
export function onnxFileProblem(file: string): string | null {
  let fd: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return `it is ${kindOf(st)}, not a regular file`;
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    return `it cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return `it is ${kindOf(st)}, not a regular file`;
    return onnxStructureProblem(fd, st.size);
  } finally {
    fs.closeSync(fd);
  }
}

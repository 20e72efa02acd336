// A training checkpoint is one file, written atomically (temporary file, fsync, rename), so a
// reader sees either the previous checkpoint or the new one, never a mix:
//
//   offset 0   "CSCKPT01"
//          8   u32 LE length J of the JSON header
//         12   JSON header (UTF-8): { meta, tensors: [{ name, shape, offset }] }, padded to 8 bytes
//   12+J+pad   float32 LE data of every tensor, at the offsets named in the header
import fsp from 'node:fs/promises';
import { writeFileAtomic, sweepTemporaries } from '../util/atomic-file.ts';

const MAGIC = 'CSCKPT01';

export interface NamedArray {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface CheckpointFile<M> {
  meta: M;
  tensors: Map<string, NamedArray>;
}

export async function writeCheckpoint<M>(file: string, meta: M, tensors: readonly NamedArray[]): Promise<void> {
  let offset = 0;
  const index = tensors.map((t) => {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length)
      throw new Error(`checkpoint tensor ${t.name}: shape ${t.shape} holds ${size} values, data ${t.data.length}`);
    const entry = { name: t.name, shape: t.shape, offset };
    offset += t.data.length * 4;
    return entry;
  });
  const json = Buffer.from(JSON.stringify({ meta, tensors: index }), 'utf8');
  const pad = (8 - ((12 + json.length) % 8)) % 8;
  const head = Buffer.alloc(12 + json.length + pad, 0x20);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(json.length + pad, 8);
  json.copy(head, 12);
  const parts: Uint8Array[] = [head, ...tensors.map((t) => le(t.data))];
  await writeFileAtomic(file, parts);
}

export async function readCheckpoint<M>(file: string): Promise<CheckpointFile<M>> {
  const buf = await fsp.readFile(file);
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) throw new Error(`${file} is not a CarStudio checkpoint`);
  const jlen = buf.readUInt32LE(8);
  const header = JSON.parse(buf.toString('utf8', 12, 12 + jlen)) as {
    meta: M;
    tensors: { name: string; shape: number[]; offset: number }[];
  };
  const base = 12 + jlen;
  const tensors = new Map<string, NamedArray>();
  for (const t of header.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const start = base + t.offset;
    if (start + n * 4 > buf.length) throw new Error(`${file} is truncated (tensor ${t.name})`);
    let data: Float32Array;
    if (littleEndian()) {
      data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + start + n * 4));
    } else {
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(start + i * 4);
    }
    tensors.set(t.name, { name: t.name, shape: t.shape, data });
  }
  return { meta: header.meta, tensors };
}

export { writeFileAtomic, sweepTemporaries };

function littleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

function le(a: Float32Array): Uint8Array {
  if (littleEndian()) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const b = Buffer.alloc(a.length * 4);
  a.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

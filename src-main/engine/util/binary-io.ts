import type fsp from 'node:fs/promises';

let littleEndian: boolean | null = null;
/** Feature shards and journals are written in the machine's byte order, which must be little-endian. */
export function isLittleEndian(): boolean {
  littleEndian ??= new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  return littleEndian;
}

/** Writes every part in order, looping over short writes. */
export async function writeAll(fh: fsp.FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  for (const part of parts) {
    let off = 0;
    while (off < part.byteLength) {
      const { bytesWritten } = await fh.write(part, off, part.byteLength - off);
      off += bytesWritten;
    }
  }
}

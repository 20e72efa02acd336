#!/usr/bin/env node
// Renders resources/icon.svg to resources/icon.png (512x512), the icon electron-builder uses for
// every target (it makes the macOS .icns and the Linux sizes from this PNG).
//   node scripts/build-icon.mjs
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const resources = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'resources');
await sharp(path.join(resources, 'icon.svg'), { density: 144 })
  .resize(512, 512)
  .png({ compressionLevel: 9 })
  .toFile(path.join(resources, 'icon.png'));
console.log('resources/icon.png: 512x512');

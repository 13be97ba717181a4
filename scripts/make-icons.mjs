// Draws the app icon (a dark-blue rounded square with a white key-hole shield) as PNGs in assets/,
// with node:zlib only. Run: node scripts/make-icons.mjs
import { Buffer } from 'node:buffer';
import { deflateSync } from 'node:zlib';
import { writeFileSync, mkdirSync } from 'node:fs';

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

function png(size, pixel) {
  const raw = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0;
    for (let x = 0; x < size; x++) {
      const [r, g, b, a] = pixel(x / size, y / size);
      raw.set([r, g, b, a], y * (size * 4 + 1) + 1 + x * 4);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function icon(u, v) {
  // Rounded square background.
  const r = 0.18;
  const dx = Math.max(Math.abs(u - 0.5) - (0.5 - r - 0.02), 0);
  const dy = Math.max(Math.abs(v - 0.5) - (0.5 - r - 0.02), 0);
  if (dx * dx + dy * dy > r * r) return [0, 0, 0, 0];
  // Shield: top half a rectangle, bottom a narrowing curve.
  const sx = Math.abs(u - 0.5);
  const inShield =
    v > 0.22 && v < 0.82 && sx < (v < 0.52 ? 0.24 : 0.24 * Math.sqrt(Math.max(0, (0.82 - v) / 0.3)));
  // Key hole: a circle and a slot.
  const hole = (u - 0.5) ** 2 + (v - 0.45) ** 2 < 0.055 ** 2 || (sx < 0.022 && v > 0.45 && v < 0.62);
  if (inShield && !hole) return [255, 255, 255, 255];
  return [0x1f, 0x3a, 0x68, 255];
}

mkdirSync('assets', { recursive: true });
for (const size of [512, 256]) {
  writeFileSync(size === 512 ? 'assets/icon.png' : `assets/icon-${size}.png`, png(size, icon));
}
console.log('wrote assets/icon.png (512) and assets/icon-256.png');

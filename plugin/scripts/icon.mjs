// Draws static/image/icon.png (run once; the PNG is committed): a white handset on a blue disc.
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const SIZE = 56;
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
const chunk = (type, data) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
};

// Coverage of a pixel by a shape, 4×4 supersampled, for smooth edges.
function cover(inside, x, y) {
  let n = 0;
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) if (inside(x + (i + 0.5) / 4, y + (j + 0.5) / 4)) n++;
  return n / 16;
}
const c = SIZE / 2;
const disc = (x, y) => (x - c) ** 2 + (y - c) ** 2 <= (c - 1) ** 2;
// The handset: a grip bar with an ear piece and a mouth piece, tilted 45°.
function handset(x, y) {
  const u = ((x - c) - (y - c)) / Math.SQRT2;
  const v = ((x - c) + (y - c)) / Math.SQRT2;
  const grip = Math.abs(u) <= 15 && v >= -9 && v <= -3;
  const ends = Math.abs(u) >= 8 && Math.abs(u) <= 17 && v >= -9 && v <= 5;
  return grip || ends;
}
const rows = [];
for (let y = 0; y < SIZE; y++) {
  const row = Buffer.alloc(1 + SIZE * 4);
  for (let x = 0; x < SIZE; x++) {
    const a = cover(disc, x, y);
    const h = cover(handset, x, y) * a;
    const [r, g, b] = [52 + (255 - 52) * h, 152 + (255 - 152) * h, 219 + (255 - 219) * h];
    row.set([Math.round(r), Math.round(g), Math.round(b), Math.round(255 * a)], 1 + x * 4);
  }
  rows.push(row);
}
const header = Buffer.alloc(13);
header.writeUInt32BE(SIZE, 0);
header.writeUInt32BE(SIZE, 4);
header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA
const png = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  chunk('IHDR', header),
  chunk('IDAT', deflateSync(Buffer.concat(rows))),
  chunk('IEND', Buffer.alloc(0)),
]);
writeFileSync(new URL('../static/image/icon.png', import.meta.url), png);
console.log(`icon.png: ${png.length} bytes`);

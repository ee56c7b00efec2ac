/**
 * The Redis Cluster hash slot of a key: CRC16 (XMODEM) of its hash tag (what is between the first `{`
 * and the first `}` after it, when that is not empty), else of the whole key, modulo 16384. Keys are
 * hashed as the UTF-8 bytes Redis receives.
 */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i += 1) {
    crc ^= bytes[i]! << 8;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc & 0x3fff;
}

/**
 * BlurHash decoding (https://blurha.sh, the algorithm of the reference
 * implementation): turns a photo's `blur_hash` into a tiny blurred preview
 * shown while the real image loads.
 */

const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

function decode83(text: string): number {
  let value = 0;
  for (const char of text) {
    const digit = DIGITS.indexOf(char);
    if (digit < 0) throw new Error("Invalid BlurHash character");
    value = value * 83 + digit;
  }
  return value;
}

function srgbToLinear(value: number): number {
  const v = value / 255;
  return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
}

function linearToSrgb(value: number): number {
  const v = Math.max(0, Math.min(1, value));
  return v <= 0.0031308 ? Math.round(v * 12.92 * 255 + 0.5) : Math.round((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5);
}

function signPow(value: number, exponent: number): number {
  return Math.sign(value) * Math.abs(value) ** exponent;
}

/** Whether `hash` is a well-formed BlurHash. */
export function isBlurHash(hash: string): boolean {
  if (hash.length < 6) return false;
  try {
    const sizeFlag = decode83(hash[0] ?? "");
    const numY = Math.floor(sizeFlag / 9) + 1;
    const numX = (sizeFlag % 9) + 1;
    decode83(hash);
    return hash.length === 4 + 2 * numX * numY;
  } catch {
    return false;
  }
}

/** RGBA pixels (width x height) of the preview; throws on a malformed hash. */
export function decodeBlurHash(hash: string, width: number, height: number): Uint8ClampedArray {
  if (!isBlurHash(hash)) throw new Error("Invalid BlurHash");
  const sizeFlag = decode83(hash.slice(0, 1));
  const numY = Math.floor(sizeFlag / 9) + 1;
  const numX = (sizeFlag % 9) + 1;
  const maximumValue = (decode83(hash.slice(1, 2)) + 1) / 166;

  const colors: [number, number, number][] = [];
  const dc = decode83(hash.slice(2, 6));
  colors.push([srgbToLinear(dc >> 16), srgbToLinear((dc >> 8) & 255), srgbToLinear(dc & 255)]);
  for (let i = 1; i < numX * numY; i += 1) {
    const value = decode83(hash.slice(4 + i * 2, 6 + i * 2));
    colors.push([
      signPow((Math.floor(value / (19 * 19)) - 9) / 9, 2) * maximumValue,
      signPow(((Math.floor(value / 19) % 19) - 9) / 9, 2) * maximumValue,
      signPow(((value % 19) - 9) / 9, 2) * maximumValue,
    ]);
  }

  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let j = 0; j < numY; j += 1) {
        for (let i = 0; i < numX; i += 1) {
          const basis = Math.cos((Math.PI * x * i) / width) * Math.cos((Math.PI * y * j) / height);
          const color = colors[i + j * numX] ?? [0, 0, 0];
          r += color[0] * basis;
          g += color[1] * basis;
          b += color[2] * basis;
        }
      }
      const offset = 4 * (x + y * width);
      pixels[offset] = linearToSrgb(r);
      pixels[offset + 1] = linearToSrgb(g);
      pixels[offset + 2] = linearToSrgb(b);
      pixels[offset + 3] = 255;
    }
  }
  return pixels;
}

const cache = new Map<string, string | null>();

/**
 * A data: URL of the preview (32 px wide), or null where it cannot be
 * made (malformed hash, no canvas). Results are cached per hash.
 */
export function blurHashDataUrl(hash: string | null, aspect: number): string | null {
  if (!hash) return null;
  const cached = cache.get(hash);
  if (cached !== undefined) return cached;
  let url: string | null = null;
  try {
    const width = 32;
    const height = Math.max(1, Math.round(width / aspect));
    const pixels = decodeBlurHash(hash, width, height);
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    if (context) {
      const image = context.createImageData(width, height);
      image.data.set(pixels);
      context.putImageData(image, 0, 0);
      url = canvas.toDataURL();
    }
  } catch {
    url = null;
  }
  cache.set(hash, url);
  return url;
}

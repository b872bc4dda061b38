// Formatting and parsing of sizes, the same units as the command-line tools
// (pkg/config.ParseSize): 65536, 64KiB, 64KB, 1.5MiB.

const UNITS = [
  ["kib", 1024], ["mib", 1024 ** 2], ["gib", 1024 ** 3],
  ["kb", 1e3], ["mb", 1e6], ["gb", 1e9],
  ["k", 1024], ["m", 1024 ** 2], ["g", 1024 ** 3],
  ["b", 1],
];

// parseSize returns the bytes a size string means, or NaN.
export function parseSize(text) {
  let t = String(text).trim().toLowerCase();
  if (t === "") return NaN;
  let mult = 1;
  for (const [suffix, m] of UNITS) {
    if (t.endsWith(suffix)) {
      t = t.slice(0, -suffix.length).trim();
      mult = m;
      break;
    }
  }
  if (!/^[0-9]*\.?[0-9]+(e[0-9]+)?$/.test(t)) return NaN;
  return Math.round(parseFloat(t) * mult);
}

// formatBytes writes bytes with a binary unit, like config.HumanBytes.
export function formatBytes(n) {
  const abs = Math.abs(n);
  if (abs < 1024) return Math.round(n) + " B";
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}

// formatDuration writes milliseconds as seconds with sensible precision.
export function formatDuration(ms) {
  if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
  if (ms >= 1) return ms.toFixed(0) + " ms";
  return "0 s";
}

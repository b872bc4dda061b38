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

// formatBytes writes bytes in decimal units (B, kB, MB, GB, TB), exactly as
// bp-client's report does (config.HumanBytes), so the page and the CLI give
// the same number for the same bytes. Settings (64KiB, 1MiB) stay binary,
// as their inputs are.
export function formatBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = Math.abs(n), i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  const sign = n < 0 ? "-" : "";
  return sign + (i === 0 ? v.toFixed(0) : fixed1(v)) + " " + units[i];
}

// fixed1 is v with one decimal, rounded as Go's fmt does: an exact tie goes to
// the even digit (1.25 -> 1.2), where toFixed would go up. A tie at one
// decimal is exact only when 4v is an odd whole number (0.25, 0.75, 1.25, ...).
function fixed1(v) {
  if (Number.isInteger(v * 4) && (v * 4) % 2 === 1) {
    const t = Math.floor(v * 10); // v*10 = t + 0.5 exactly
    return ((t % 2 === 0 ? t : t + 1) / 10).toFixed(1);
  }
  return v.toFixed(1);
}

// formatDuration writes milliseconds as seconds with sensible precision.
export function formatDuration(ms) {
  if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
  if (ms >= 1) return ms.toFixed(0) + " ms";
  return "0 s";
}

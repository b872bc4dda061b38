// A small line chart on a canvas: one line per series over time, shaded
// bands, and an optional dashed reference line. No library, no build step.

import { formatBytes, formatDuration } from "./format.js";

// drawChart draws series (arrays of {t, v}, t in seconds) on canvas.
// opts: {lines: [{points, color, width}], bands: [[t0, t1]], ref: number,
//        tMax: seconds, unit: "B" | "B/s" | "ms"}
export function drawChart(canvas, opts) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 400;
  const cssH = canvas.clientHeight || 190;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);

  const pad = { left: 64, right: 18, top: 10, bottom: 22 };
  const w = cssW - pad.left - pad.right;
  const h = cssH - pad.top - pad.bottom;
  const tMax = Math.max(opts.tMax || 0, 0.1);
  let vMax = opts.ref || 0;
  for (const line of opts.lines) {
    for (const p of line.points) if (p.v > vMax) vMax = p.v;
  }
  vMax = 4 * niceStepBytes((vMax || 1) / 4);
  const x = (t) => pad.left + (t / tMax) * w;
  const y = (v) => pad.top + h - (v / vMax) * h;

  // Bands first, under everything.
  ctx.fillStyle = "rgba(245, 34, 45, 0.10)";
  for (const [t0, t1] of opts.bands || []) {
    ctx.fillRect(x(t0), pad.top, Math.max(x(t1) - x(t0), 1), h);
  }

  // Grid and axis labels.
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#5b6475";
  ctx.strokeStyle = "#e8ebf0";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = (vMax * i) / 4;
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left, yy);
    ctx.lineTo(pad.left + w, yy);
    ctx.stroke();
    const label = opts.unit === "ms" ? formatDuration(v) : formatBytes(v) + (opts.unit === "B/s" ? "/s" : "");
    ctx.fillText(label, pad.left - 6, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const step = niceStep(tMax / 6);
  for (let t = 0; t <= tMax + 1e-9; t += step) {
    const xx = Math.round(x(t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(xx, pad.top);
    ctx.lineTo(xx, pad.top + h);
    ctx.stroke();
    ctx.fillText(formatSeconds(t, step), xx, pad.top + h + 5);
  }
  ctx.strokeStyle = "#b8bfcc";
  ctx.strokeRect(pad.left + 0.5, pad.top + 0.5, w, h);

  if (opts.ref) {
    ctx.save();
    ctx.setLineDash([5, 4]);
    ctx.strokeStyle = "#7a4d00";
    ctx.beginPath();
    ctx.moveTo(pad.left, y(opts.ref));
    ctx.lineTo(pad.left + w, y(opts.ref));
    ctx.stroke();
    ctx.restore();
  }

  ctx.save();
  ctx.beginPath();
  ctx.rect(pad.left, pad.top, w, h);
  ctx.clip();
  ctx.lineJoin = "round";
  for (const line of opts.lines) {
    if (line.points.length === 0) continue;
    ctx.strokeStyle = line.color;
    ctx.lineWidth = line.width || 1.5;
    ctx.beginPath();
    // Several samples per pixel: keep each pixel's highest value, so short
    // peaks survive a long run.
    let lastX = -1, peak = 0, started = false;
    for (const p of line.points) {
      const px = Math.round(x(p.t));
      if (px === lastX) {
        if (p.v > peak) peak = p.v;
        continue;
      }
      if (lastX >= 0) {
        if (!started) { ctx.moveTo(lastX, y(peak)); started = true; } else ctx.lineTo(lastX, y(peak));
      }
      lastX = px;
      peak = p.v;
    }
    if (!started) ctx.moveTo(lastX, y(peak)); else ctx.lineTo(lastX, y(peak));
    ctx.stroke();
  }
  ctx.restore();
}

// niceStepBytes rounds a grid step up to one that reads well in the decimal
// units formatBytes writes: 1, 2, 2.5, 5 times a power of ten.
function niceStepBytes(v) {
  const unit = Math.pow(10, Math.max(0, Math.floor(Math.log10(v))));
  const m = v / unit;
  for (const c of [1, 2, 2.5, 5]) if (c >= m) return c * unit;
  return 10 * unit;
}

function niceStep(s) {
  for (const c of [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]) if (c >= s) return c;
  return 7200;
}

function formatSeconds(t, step) {
  if (step < 1) return (Math.round(t * 10) / 10).toFixed(1) + " s";
  if (t >= 120 && step >= 60) return Math.round(t / 60) + " min";
  return Math.round(t) + " s";
}

// The HTML report's drawing: the run's timeline (REPORT.timeline, from
// bp-client's --output json) on the browser client's charts (drawChart from
// web/static/chart.js, inlined before this script). Each canvas says how
// many points it drew (data-points), for the tests.

const $ = (id) => document.getElementById(id);
const tl = REPORT.timeline || { points: [], blocked_bands: [] };
const pts = tl.points;
const tMax = pts.length ? pts[pts.length - 1].t : 0;
const band = (bs) => (bs || []).map((b) => [b.from, b.to]);

// The server's stop: from the verdict's stop to its resume (or the run's
// end), as the verdict dates them from the acks; else the spans in which
// its live view saw the server stopped (those lag by an ack interval).
function stoppedBands() {
  const v = REPORT.verdict || {};
  if (v.server_stopped_at_seconds != null) {
    return [[v.server_stopped_at_seconds, v.server_resumed_at_seconds == null ? tMax : v.server_resumed_at_seconds]];
  }
  return band(tl.server_stopped_bands);
}

// rate is bytes/s written between consecutive points (0 at the first).
function rate() {
  return pts.map((p, i) => {
    if (i === 0) return { t: p.t, v: 0 };
    const dt = p.t - pts[i - 1].t;
    return { t: p.t, v: dt > 0 ? (p.bytes_written - pts[i - 1].bytes_written) / dt : 0 };
  });
}

const line = (key, color, width) => ({ color, width, points: pts.map((p) => ({ t: p.t, v: p[key] })) });
const charts = [
  ["chart-bytes", { lines: [line("bytes_written", "#2457c5", 2), line("bytes_acked", "#389e0d", 1.5)], bands: band(tl.blocked_bands), unit: "B" }],
  ["chart-pipe", { lines: [line("bytes_in_pipe", "#d46b08", 2)], bands: band(tl.peer_window_zero_bands), ref: REPORT.peak_bytes_in_pipe, unit: "B" }],
  ["chart-rate", { lines: [{ color: "#2457c5", width: 2, points: rate() }], bands: stoppedBands(), unit: "B/s" }],
];

function draw() {
  for (const [id, opts] of charts) {
    drawChart($(id), Object.assign({ tMax }, opts));
    $(id).dataset.points = String(opts.lines[0].points.length);
  }
}

// spans lists bands as "from 2.1 s to 5.3 s (3.2 s)".
function spans(id, bs) {
  const el = $(id);
  if (!bs || !bs.length) { el.textContent = "none"; return; }
  el.textContent = bs.map((b) => `${b.from.toFixed(1)} s to ${b.to.toFixed(1)} s (${b.seconds.toFixed(1)} s)`).join("; ");
  el.dataset.count = String(bs.length);
}

const v = REPORT.verdict;
$("verdict").textContent = v ? v.summary : "no verdict (the client did not write)";
$("verdict").dataset.outcome = v ? v.outcome : "";
if (v) {
  for (const r of v.reasons || []) {
    const li = document.createElement("li");
    li.textContent = r;
    $("reasons").appendChild(li);
  }
  const at = (s) => (s == null ? "—" : s.toFixed(2) + " s");
  $("stopped").textContent = at(v.server_stopped_at_seconds);
  $("resumed").textContent = at(v.server_resumed_at_seconds);
}
spans("blocked-bands", tl.blocked_bands);
spans("window-bands", tl.peer_window_zero_bands);
const last = pts[pts.length - 1] || {};
$("written").textContent = formatBytes(last.bytes_written || 0) + ` (${last.bytes_written || 0} bytes)`;
$("acked").textContent = formatBytes(last.bytes_acked || 0) + ` (${last.bytes_acked || 0} bytes)`;
document.body.dataset.points = String(pts.length);
draw();
window.addEventListener("resize", draw);
document.body.dataset.ready = "true";

"""The live view's page: one self-contained HTML document (no CDN, works offline).

It shows ``stream.mjpg`` and renders ``state.json`` twice a second: current visitors, the last
visitor events, rates / latency / dropped frames and the detector's diagnostics.  URLs are
relative, so the page also works behind a reverse proxy under a path prefix.
"""

PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mask_detection live view</title>
<style>
  :root { color-scheme: dark; --bg: #15181c; --panel: #1f242a; --text: #e8eaed; --dim: #9aa0a6;
          --mask: #1e9e3a; --no-mask: #d93025; --unknown: #e0b000; --line: #30363d; }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--text);
         font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  header { display: flex; align-items: baseline; gap: 16px; padding: 10px 16px;
           border-bottom: 1px solid var(--line); }
  header h1 { font-size: 18px; margin: 0; }
  #status { color: var(--dim); }
  main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; }
  #view { position: relative; flex: 1 1 640px; max-width: 960px; background: #000;
          align-self: flex-start;
          border-radius: 6px; overflow: hidden; min-height: 240px; }
  #stream { display: block; width: 100%; height: auto; }
  #overlay { position: absolute; inset: 0; display: flex; align-items: center;
             justify-content: center; font-size: 20px; color: var(--dim);
             background: rgba(0, 0, 0, 0.65); text-align: center; padding: 16px; }
  #overlay[hidden] { display: none; }
  aside { flex: 1 1 340px; display: flex; flex-direction: column; gap: 16px; min-width: 300px; }
  section { background: var(--panel); border-radius: 6px; padding: 10px 12px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--dim);
       margin: 0 0 8px; font-weight: 600; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line);
           white-space: nowrap; }
  th { color: var(--dim); font-weight: 500; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .chip { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600;
          font-size: 12px; }
  .mask { background: var(--mask); color: #fff; }
  .no_mask { background: var(--no-mask); color: #fff; }
  .unknown { background: var(--unknown); color: #000; }
  .empty { color: var(--dim); font-style: italic; }
  ol { list-style: none; margin: 0; padding: 0; max-height: 170px; overflow-y: auto;
       scrollbar-color: #4a5058 transparent; scrollbar-width: thin; }
  ol li { padding: 3px 0; border-bottom: 1px solid var(--line); }
  ol li time { color: var(--dim); font-variant-numeric: tabular-nums; margin-right: 6px; }
  dl { display: grid; grid-template-columns: auto 1fr; gap: 3px 12px; margin: 0; }
  dt { color: var(--dim); }
  dd { margin: 0; font-variant-numeric: tabular-nums; }
  .level-OK { color: #5bd075; } .level-WARN { color: var(--unknown); }
  .level-ERROR, .level-STALE { color: #ff6b5e; }
</style>
</head>
<body>
<header>
  <h1>mask_detection live view</h1>
  <span id="status">connecting&hellip;</span>
</header>
<main>
  <div id="view">
    <img id="stream" alt="annotated camera stream">
    <div id="overlay">no images yet</div>
  </div>
  <aside>
    <section>
      <h2>Visitors now</h2>
      <table>
        <thead><tr><th>track</th><th>state</th><th class="num">confidence</th>
          <th class="num">present</th></tr></thead>
        <tbody id="visitors"></tbody>
      </table>
      <p id="no-visitors" class="empty">nobody in view</p>
    </section>
    <section>
      <h2>Last events</h2>
      <ol id="events"></ol>
      <p id="no-events" class="empty">no visitor events yet</p>
    </section>
    <section>
      <h2>Rates and latency</h2>
      <dl id="stats"></dl>
    </section>
  </aside>
</main>
<script>
"use strict";
const LABELS = { mask: "mask", no_mask: "no mask", unknown: "unknown" };
const EVENTS = { appeared: "appeared", mask_state_changed: "now", left: "left" };
const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}
function chip(labelName) {
  return element("span", LABELS[labelName] || labelName, "chip " + labelName);
}
function fixed(value, digits, unit) {
  return value === null || value === undefined ? "n/a" : value.toFixed(digits) + (unit || "");
}
function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

function renderVisitors(visitors) {
  const body = $("visitors");
  body.replaceChildren(...visitors.map((v) => {
    const row = element("tr");
    row.dataset.trackId = v.track_id;
    row.append(element("td", v.track_id ? "#" + v.track_id : "untracked"));
    const state = element("td");
    state.append(chip(v.label_name));
    row.append(state, element("td", (100 * v.confidence).toFixed(0) + " %", "num"),
               element("td", fixed(v.seconds_present, 1, " s"), "num"));
    return row;
  }));
  $("no-visitors").hidden = visitors.length > 0;
}

function renderEvents(events) {
  $("events").replaceChildren(...events.map((e) => {
    const item = element("li");
    item.append(element("time", clock(e.time)), element("span", "#" + e.track_id + " "));
    if (e.event_name === "left") {
      item.append(element("span", "left "), chip(e.label_name));
    } else {
      item.append(element("span", (EVENTS[e.event_name] || e.event_name) + " "),
                  chip(e.label_name),
                  element("span", " " + (100 * e.confidence).toFixed(0) + " %"));
    }
    return item;
  }));
  $("no-events").hidden = events.length > 0;
}

function detectorStatus(diagnostics) {
  const names = Object.keys(diagnostics).filter((name) => name.includes("mask detector"));
  return names.length ? diagnostics[names[0]] : null;
}

function renderStats(state) {
  const rows = [];
  const img = state.images, det = state.detections, stream = state.stream;
  const detector = detectorStatus(state.diagnostics);
  const values = detector ? detector.values || {} : {};
  rows.push(["annotated images", fixed(img.rate_hz, 1, " Hz") + ", latency " +
             fixed(img.latency_ms_mean, 0, " ms")]);
  rows.push(["detections", fixed(det.rate_hz, 1, " Hz") + ", latency " +
             fixed(det.latency_ms_mean, 0, " ms")]);
  if (detector) {
    rows.push(["detector input / processed", (values.input_rate_hz || "n/a") + " / " +
               (values.processed_rate_hz || "n/a") + " Hz"]);
    rows.push(["processing per frame", (values.processing_ms_mean || "n/a") + " ms"]);
    rows.push(["dropped frames (total)", values.dropped_frames_total || "0"]);
  }
  rows.push(["stream to browsers", fixed(stream.fps, 1, " fps") + ", " + stream.clients +
             " viewer" + (stream.clients === 1 ? "" : "s")]);
  if (stream.frames_skipped) rows.push(["frames skipped by slow viewers",
                                        String(stream.frames_skipped)]);
  if (img.bad) rows.push(["bad images", String(img.bad)]);
  const list = $("stats");
  list.replaceChildren();
  for (const [name, value] of rows) list.append(element("dt", name), element("dd", value));
  if (detector) {
    list.append(element("dt", "detector"),
                element("dd", detector.level_name + ": " + detector.message,
                        "level-" + detector.level_name));
  }
}

function renderOverlay(state) {
  const overlay = $("overlay"), img = state.images;
  if (!img.received) {
    overlay.textContent = "no images yet (waiting for annotated_image)";
    overlay.hidden = false;
  } else if (img.last_age_s > 3) {
    overlay.textContent = "no images for " + img.last_age_s.toFixed(0) + " s";
    overlay.hidden = false;
  } else {
    overlay.hidden = true;
  }
}

async function refresh() {
  try {
    const response = await fetch("state.json", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const state = await response.json();
    renderOverlay(state);
    renderVisitors(state.visitors);
    renderEvents(state.events);
    renderStats(state);
    $("status").textContent = "updated " + clock(state.time);
  } catch (error) {
    $("status").textContent = "viewer not reachable (" + error.message + "), retrying";
  }
}

// A restarted viewer ends the stream: reconnect after a pause.
$("stream").addEventListener("error", () => {
  setTimeout(() => { $("stream").src = "stream.mjpg?" + Date.now(); }, 2000);
});
// Started after the page's load event: an endless stream (without frames yet) would
// otherwise keep the page loading forever.
window.addEventListener("load", () => { $("stream").src = "stream.mjpg"; });
refresh();
setInterval(refresh, 500);
</script>
</body>
</html>
"""

// The Backfills page: renders GET api/backfills (the objects of `airflow-spreader status --json`) every 5 s.
// Requests go to the same origin as the Airflow UI, so they carry its session cookie; no token is handled here.
"use strict";

const REFRESH_MS = 5000;
const FAILED_SHOWN = 20;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) node.append(child);
  return node;
}

const int = (n) => Number(n).toLocaleString("en-US");
const rate = (n) => (n === null || n === undefined ? "-" : `${Number(n).toLocaleString("en-US", {minimumFractionDigits: 1, maximumFractionDigits: 1})} ids/s`);
const field = (name, text, value) => el("span", {"data-field": name, "data-value": value ?? null, text});

function duration(seconds) {  // as the console: <1 min, 42 min, 3 h 12 min, 2 d 4 h
  let minutes = Math.floor(seconds / 60);
  if (minutes < 1) return "<1 min";
  if (minutes < 60) return `${minutes} min`;
  let hours = Math.floor(minutes / 60); minutes %= 60;
  if (hours < 24) return `${hours} h ${minutes} min`;
  const days = Math.floor(hours / 24); hours %= 24;
  return `${days} d ${hours} h`;
}

function when(iso, zone) {
  const options = {timeZone: zone || "UTC", weekday: "short", year: "numeric", month: "2-digit", day: "2-digit",
                   hour: "2-digit", minute: "2-digit", hour12: false, timeZoneName: "short"};
  try { return new Date(iso).toLocaleString("en-GB", options); }
  catch (error) { return new Date(iso).toISOString(); }
}

function chart(history, limit) {
  // One slot a minute since the start (15 to 60 slots), the newest on the right; dashed: the rate in force.
  const width = 760, height = 150, left = 44, bottom = 18, top = 10;
  const SLOTS = Math.min(60, Math.max(15, history.length));
  const points = history.slice(-SLOTS);
  const peak = Math.max(limit || 0, ...points.map((p) => p.ids_per_second), 1);
  const plotW = width - left - 6, plotH = height - top - bottom, step = plotW / SLOTS;
  const y = (v) => top + plotH - (v / peak) * plotH;
  const root = svg("svg", {class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "data-field": "chart",
                           "aria-label": "ids per second, minute by minute"});
  root.append(svg("line", {x1: left, x2: width - 6, y1: top + plotH, y2: top + plotH, stroke: "#cbd5e1"}));
  points.forEach((p, i) => {
    const x = left + (SLOTS - points.length + i) * step;
    const bar = svg("rect", {class: "bar-rect", x: x + 1, y: y(p.ids_per_second), width: Math.max(step - 2, 1),
                             height: Math.max(top + plotH - y(p.ids_per_second), 0)});
    bar.append(svg("title", {}, document.createTextNode(`${p.minute}: ${p.ids_per_second.toFixed(1)} ids/s`)));
    root.append(bar);
  });
  if (limit) root.append(svg("line", {class: "limit", x1: left, x2: width - 6, y1: y(limit), y2: y(limit)}));
  const label = (x, yy, text, anchor) => svg("text", {x, y: yy, "text-anchor": anchor || "start"}, document.createTextNode(text));
  root.append(label(left - 4, top + 8, `${peak.toFixed(peak < 10 ? 1 : 0)}`, "end"));
  root.append(label(left - 4, top + plotH, "0", "end"));
  root.append(label(2, top + plotH / 2, "ids/s"));
  if (points.length) {
    const hhmm = (iso) => new Date(iso).toISOString().slice(11, 16) + " UTC";
    const last = new Date(points[points.length - 1].minute).getTime();
    root.append(label(left, height - 4, hhmm(new Date(last - (SLOTS - 1) * 60000).toISOString())));
    root.append(label(width - 6, height - 4, hhmm(points[points.length - 1].minute), "end"));
  }
  return root;
}

function inForce(b) {
  const f = b.in_force;
  if (!f) return `unknown: ${b.airflow.config_problem}`;
  const factor = f.rate_factor < 1 ? ` (the calendar's ${f.calendar_per_second}/s x${f.rate_factor}, governor)` : "";
  const sized = f.batch_size !== f.configured_batch_size ? ` (governor; configured ${int(f.configured_batch_size)})` : "";
  let text = `${f.on_peak ? "on" : "off"} peak: ${f.per_second} batches/s${factor} x ${int(f.batch_size)} ids${sized} = ${rate(f.ids_per_second)}`;
  if (f.next_change) text += `; ${f.on_peak ? "off" : "on"} peak (${f.next_per_second}/s) from ${when(f.next_change, f.timezone)}`;
  return text;
}

function governorLine(g) {  // the state and why, the time held, the adaptation's factor and batch size
  let text = `${g.message}; ${duration(g.held_seconds_total || 0)} held in all`;
  if (g.rate_factor !== null && g.rate_factor !== undefined) text += `; rate factor x${g.rate_factor}, batches of ${int(g.batch_size)}`;
  return text;
}

function eta(b, zone) {
  const e = b.eta;
  if (e.state === "estimated" && e.finish) return `${when(e.finish, zone)} (in ${duration(e.seconds_left || 0)}), ${e.reason}`;
  return `${e.state === "done" ? "done" : "none"}: ${e.reason}`;
}

function airflowLine(b) {
  const a = b.airflow;
  if (a.paused_problem && a.paused_problem === a.config_problem) return `${a.paused_problem}: state from Redis only`;
  const paused = a.paused_problem || `DAG ${b.dag_id} ${a.paused ? "paused" : "not paused"}`;
  return paused + (a.config_problem ? `; ${a.config_problem}` : "");
}

function errorTable(items, total, what) {
  // Failed ranges and quarantined keys: the first FAILED_SHOWN with their attempts and error, and how many more.
  if (!total) return el("span", {"data-field": `${what.name}-none`, text: "none"});
  const rows = items.slice(0, FAILED_SHOWN).map((item) => el("tr", {"data-field": what.row},
    el("td", {"data-field": what.field, text: what.label(item)}),
    el("td", {"data-field": "attempts", text: item.attempts}),
    el("td", {class: "error", text: (item.error || "").split("\n")[0].slice(0, 300)})));
  const more = total > FAILED_SHOWN ? el("p", {class: "muted", text: `... ${total - FAILED_SHOWN} more`}) : null;
  return el("div", {}, el("table", {class: "failed"},
    el("thead", {}, el("tr", {}, el("th", {text: what.heading}), el("th", {text: "attempts"}), el("th", {text: "error"}))),
    el("tbody", {}, rows)), more);
}

function failedTable(ranges) {
  return errorTable(ranges, ranges.length, {name: "failed", row: "failed-range", field: "range", heading: "ids",
                                            label: (r) => r.label || `${r.begin_id}-${r.end_id}`});
}

function passesLine(s) {
  // The same words as `airflow-spreader status` (tools/cli_status.py, passes_text).
  const text = `pass ${int(s.count)}${s.max_passes ? ` of at most ${int(s.max_passes)}` : ""} (ids ${int(s.floor)}..${int(s.top)})`;
  if (s.ids_left_above) return `${text}; bound reached: ${int(s.ids_left_above)} ids above ${int(s.top)} not visited`;
  if (s.looked_at) return `${text}; no new rows above ${int(s.top)} at the last look`;
  return text + (s.follow_new_rows ? "; follows new rows above the top" : "");
}

function quarantineTable(q) {
  return errorTable(q ? q.keys : [], q ? q.count : 0, {name: "quarantine", row: "quarantined-key", field: "key",
                                                       heading: "key", label: (k) => k.label || k.key});
}

function card(b) {
  const p = b.progress, zone = b.in_force ? b.in_force.timezone : "UTC";
  const stopped = p.stopped, editable = b.can_edit;
  const stop = el("button", {class: "stop", type: "button", "data-action": "stop", disabled: !editable || stopped,
                             title: editable ? "Stop: nothing more is planned, batches not yet started hand their ranges back" : "needs edit access to the DAG"}, "Stop");
  const go = el("button", {class: "go", type: "button", "data-action": "go", disabled: !editable || !stopped,
                           title: editable ? "Go: clear the stop flag; the waiting next cycle starts" : "needs edit access to the DAG"}, "Go");
  stop.addEventListener("click", () => act(b.backfill, "stop"));
  go.addEventListener("click", () => act(b.backfill, "go"));
  const pct = (p.fraction_done * 100).toFixed(1);
  const rows = [
    ["progress", el("span", {}, field("ids_done", int(p.ids_done), p.ids_done), " of ", field("total_ids", int(p.total_ids), p.total_ids),
                    ` ids (`, field("rows_done", int(p.rows_done), p.rows_done), " rows), ", field("percent", `${pct}%`, p.fraction_done))],
    ["pace", `${rate(b.ids_per_second.recent)} over the last ${duration(b.ids_per_second.recent_seconds)}, ${rate(b.ids_per_second.since_start)} since start`],
    ["in force", field("in_force", inForce(b))],
    ["batches", field("batches", `${int(p.batches_done)} done, ${int(p.in_flight)} in flight, ${int(p.batches_failed)} failed (${int(p.ids_failed)} ids), ${int(p.cycles)} cycle${p.cycles === 1 ? "" : "s"}, ${int(p.attempts_lost || 0)} attempt${p.attempts_lost === 1 ? "" : "s"} lost (lease ran out: a task died or was killed)`)],
    ["ETA", field("eta", eta(b, zone), b.eta.state)],
    ["airflow", field("airflow", airflowLine(b))],
  ];
  if (b.passes) rows.splice(4, 0, ["passes", field("passes", passesLine(b.passes), b.passes.count)]);
  if (b.verification) rows.splice(4, 0, ["verification", field("verification", b.verification.message, b.state)]);
  if (p.unit === "rows") {  // rows batching: progress in rows, against an estimate until the walk is over
    const estimate = p.rows_total_is_estimate ? " (an estimate until the walk reaches the bottom)" : "";
    rows[0] = ["progress", el("span", {}, field("rows_done", int(p.rows_done), p.rows_done), " of ",
                              field("rows_total", `${p.rows_total_is_estimate ? "~" : ""}${int(p.rows_total)}`, p.rows_total),
                              ` rows${estimate}, `, field("percent", `${pct}%`, p.fraction_done))];
  }
  if (b.governor) rows.splice(rows.length - 1, 0, ["governor", field("governor", governorLine(b.governor))]);
  const idle = Object.entries((b.eta && b.eta.idle_seconds) || {}).filter(([, s]) => s > 0);
  if (idle.length) rows.splice(rows.length - 1, 0, ["idle", field("idle", `${idle.map(([k, s]) => `${k} ${duration(s)}`).join(", ")} in the last ${duration(b.ids_per_second.recent_seconds)}: set apart, not counted as slowness`)]);
  if (b.halt) rows.unshift(["halted", field("halt", `${b.halt.at ? when(b.halt.at, zone) + ": " : ""}${b.halt.message}`)]);
  return el("section", {class: "backfill", "data-backfill": b.backfill},
    el("div", {class: "head"}, el("h2", {text: b.backfill}),
       el("span", {class: `state state-${b.state.replace(" ", "-")}`, "data-field": "state", text: b.state}),
       el("span", {class: "spacer"}), stop, go),
    el("div", {class: "bar", title: `${pct}%`}, el("div", {style: `width: ${pct}%`})),
    el("dl", {class: "grid"}, rows.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {}, v)])),
    el("div", {class: "muted", text: "ids per second, minute by minute (dashed: the rate in force)"}),
    chart(b.history || [], b.in_force ? b.in_force.ids_per_second : null),
    el("h3", {text: `failed ranges (${b.failed_ranges.length})`}),
    failedTable(b.failed_ranges),
    el("h3", {text: `quarantined keys: poison rows (${b.quarantine ? b.quarantine.count : 0})`}),
    quarantineTable(b.quarantine));
}

function say(text, error) {
  const box = document.getElementById("message");
  box.hidden = !text;
  box.className = error ? "error" : "";
  box.replaceChildren();
  if (text) box.append(text);
}

async function request(url, options) {
  const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}, ...options});
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : response.statusText;
    const error = new Error(response.status === 401 ? `not logged in to Airflow (${detail}): log in, then reload this page` : `HTTP ${response.status}: ${detail}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

let loading = null;

async function refresh() {
  if (loading) return loading;
  loading = (async () => {
    try {
      const data = await request("api/backfills");
      const list = document.getElementById("backfills");
      list.replaceChildren(...data.backfills.map(card));
      const box = document.getElementById("message");
      if (!data.backfills.length) say(`No backfill in Redis at ${data.redis} that you may read.`);
      else if (box.className === "error" || box.textContent.startsWith("No backfill")) say("");
      document.getElementById("updated").textContent = `updated ${new Date(data.now).toISOString().slice(11, 19)} UTC`;
      document.body.dataset.updated = data.now;
    } catch (error) {
      say(error.message, true);
      document.body.dataset.error = error.message;
    } finally {
      loading = null;
    }
  })();
  return loading;
}

async function act(name, action) {
  document.querySelectorAll(`[data-backfill="${CSS.escape(name)}"] button`).forEach((b) => { b.disabled = true; });
  try {
    await request(`api/backfills/${encodeURIComponent(name)}/${action}`, {method: "POST"});
    say(action === "stop" ? `Stopped ${name}: nothing more is planned; batches not yet started hand their ranges back.`
                          : `Resumed ${name}: the waiting next cycle starts within seconds (if no run of its DAG is active, trigger it).`);
  } catch (error) {
    say(error.message, true);
  }
  await refresh();
}

window.spreaderRefresh = async () => {  // a fresh read, after any one under way (for tests and the console)
  if (loading) await loading;
  return refresh();
};
document.getElementById("refresh").addEventListener("click", () => refresh());
refresh();
setInterval(refresh, REFRESH_MS);

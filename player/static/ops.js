// Operator dashboard: follows GET /api/v1/ops/events (one queue snapshot a second, Server-Sent Events),
// renders it in place (keyed lists: an open log or a focused button survives every update), and steers the
// queue through the ops API. Titles and logs are user data: they only ever go in as textContent.
(() => {
  const UI = StreamifyUI;
  const $ = (id) => document.getElementById(id);
  const STALE_MS = 10000; // no snapshot for this long: say the view is not live
  const PRIORITY_STEP = 10;
  const PRIORITY_MAX = 100; // schemas.api.PriorityUpdate
  const state = { snapshots: 0, last: null, refused: null }; // read by the browser tests
  window.streamifyOps = state;

  // ---- formatting -------------------------------------------------------------------------------
  // Figures that change every second keep their width: "2 min 05 s".
  const duration = (seconds) => UI.humanDuration(seconds, { padded: true, unknown: "–" });

  function ago(iso, now) {
    if (!iso) return "–";
    return `${duration((now - Date.parse(iso)) / 1000)} ago`;
  }

  function speed(x) {
    return x == null ? "speed –" : `${x.toFixed(2)}× real time`;
  }

  function workerLabel(worker) {
    if (!worker) return "";
    const cut = worker.lastIndexOf(":");
    return cut < 0 ? worker : `${worker.slice(0, cut)} · pid ${worker.slice(cut + 1)}`;
  }

  // A chunked job's parts by state ({succeeded: 6, running: 2, queued: 6}): "parts 6/14 done, 2 running".
  function partsText(parts) {
    const n = (state) => parts[state] || 0;
    const total = Object.values(parts).reduce((a, b) => a + b, 0);
    if (!total) return "";
    const more = [["running", "running"], ["failed", "failed"], ["cancelled", "cancelled"]]
      .filter(([key]) => n(key)).map(([key, word]) => `${n(key)} ${word}`);
    return [`parts ${n("succeeded")}/${total} done`, ...more].join(", ");
  }

  // Seconds from queued to playable (progressive publish): "4.2 s", "1 min 05 s".
  function playableAfter(seconds) {
    return seconds < 60 ? `${seconds.toFixed(1)} s` : duration(seconds);
  }

  function put(el, selector, text) {
    const node = el.querySelector(selector);
    if (node.textContent !== text) node.textContent = text;
  }

  // ---- keyed lists: update rows in place, add new ones, drop gone ones, keep the server's order ---------
  function sync(list, items, key, templateId, fill) {
    const old = new Map([...list.children].map((el) => [el.dataset.key, el]));
    let previous = null;
    for (const item of items) {
      const k = String(key(item));
      let el = old.get(k);
      old.delete(k);
      if (!el) {
        el = $(templateId).content.firstElementChild.cloneNode(true);
        el.dataset.key = k;
        wire(el);
      }
      el.item = item;
      if (item.video_id) el.dataset.video = item.video_id;
      const link = el.querySelector("a.title"); // a job's own page: its ladder, VMAF, loudness and notes
      if (link) link.href = `/ops/jobs/${encodeURIComponent(item.id)}`;
      fill(el, item);
      const want = previous ? previous.nextElementSibling : list.firstElementChild;
      if (want !== el) list.insertBefore(el, want);
      previous = el;
    }
    for (const el of old.values()) el.remove();
    const empty = document.querySelector(`[data-empty-for="${list.id}"]`);
    if (empty) empty.hidden = items.length > 0;
  }

  // ---- rendering ----------------------------------------------------------------------------------
  function fillRunning(el, job) {
    put(el, ".title", job.video_title);
    put(el, ".owner", job.owner_name);
    const bar = el.querySelector(".bar");
    bar.value = job.progress;
    bar.setAttribute("aria-label", `${job.video_title}: ${Math.round(job.progress * 100)}% encoded`);
    put(el, ".pct", `${(job.progress * 100).toFixed(1)}%`);
    // A chunked job's parts report no speed, fps or ETA while they run: its parts and first playable say more.
    const chunked = Object.keys(job.parts || {}).length > 0 && job.speed == null;
    put(el, ".speed", chunked ? "" : speed(job.speed));
    put(el, ".fps", chunked ? "" : job.fps == null ? "fps –" : `${Math.round(job.fps)} fps`);
    put(el, ".eta", chunked ? "" : `ETA ${duration(job.eta_seconds)}`);
    put(el, ".worker", workerLabel(job.worker));
    put(el, ".attempt", job.attempts > 1 ? `attempt ${job.attempts}` : "");
    put(el, ".parts", partsText(job.parts || {}));
    const planned = Object.keys(job.parts || {}).length > 0;
    put(el, ".first-playable", job.first_playable_seconds != null
      ? `first playable in ${playableAfter(job.first_playable_seconds)}` : planned ? "not playable yet" : "");
    const cancel = el.querySelector(".cancel");
    cancel.disabled = job.cancel_requested;
    put(el, ".cancel", job.cancel_requested ? "Cancelling…" : "Cancel");
  }

  function fillQueued(el, job, now) {
    put(el, ".position", `#${job.position}`);
    put(el, ".title", job.video_title);
    put(el, ".owner", job.owner_name);
    put(el, ".waiting", `waiting ${ago(job.queued_at, now).replace(" ago", "")}`);
    put(el, ".priority", job.priority ? `priority ${job.priority > 0 ? "+" : ""}${job.priority}` : "");
    el.querySelector(".raise").disabled = job.priority >= PRIORITY_MAX;
  }

  function fillFailure(el, job, now) {
    put(el, ".title", job.video_title);
    put(el, ".owner", job.owner_name);
    put(el, ".reason", job.error || "failed without a reason");
    put(el, ".kind", job.failure_kind || ""); // the streamify_job_failures reason an alert would name
    put(el, ".when", `failed ${ago(job.finished_at, now)}`);
    put(el, ".attempts", `${job.attempts} attempt${job.attempts === 1 ? "" : "s"}`);
    put(el, ".worker", workerLabel(job.worker));
    put(el, ".first-playable", job.first_playable_seconds != null
      ? `first playable in ${playableAfter(job.first_playable_seconds)}` : "");
    const log = el.querySelector(".log");
    log.hidden = !job.log_tail;
    put(el, ".log-tail", job.log_tail || "");
  }

  // A finished job: when, how fast, its rungs as measured ("720p · 2.1 Mb/s · VMAF 95"), and whether it left notes.
  function fillFinished(el, job, now) {
    put(el, ".title", job.video_title);
    put(el, ".owner", job.owner_name);
    put(el, ".when", `finished ${ago(job.finished_at, now)}`);
    put(el, ".speed", job.speed == null ? "" : speed(job.speed));
    put(el, ".rungs", job.renditions.filter((r) => r.width != null).map(UI.renditionLine).join(", "));
    put(el, ".note-count", job.notes.length ? `${job.notes.length} note${job.notes.length === 1 ? "" : "s"}` : "");
  }

  function fillWorker(el, worker, titles, now) {
    put(el, ".name", `${worker.host} · pid ${worker.pid}`);
    const load = worker.load1 == null ? "" : `load ${worker.load1.toFixed(2)}`;
    put(el, ".load", worker.cpus ? `${load} · ${worker.cpus} slot${worker.cpus === 1 ? "" : "s"}` : load);
    const current = worker.running_jobs.map((id) => titles.get(id) || id);
    put(el, ".current", current.length ? `encoding: ${current.join(", ")}` : "idle");
    el.classList.toggle("busy", current.length > 0);
    put(el, ".since", `up ${ago(worker.started_at, now).replace(" ago", "")}`);
    put(el, ".seen", `seen ${ago(worker.last_seen, now)}`);
  }

  function render(snap) {
    const now = Date.parse(snap.at);
    for (const li of $("counts").children) {
      const n = li.dataset.state === "workers" ? snap.workers.length : snap.counts[li.dataset.state] ?? 0;
      put(li, ".n", String(n));
    }
    sync($("running"), snap.running, (j) => j.id, "running-template", fillRunning);
    sync($("queue"), snap.queue, (j) => j.id, "queue-template", (el, j) => fillQueued(el, j, now));
    sync($("failures"), snap.failures, (j) => j.id, "failure-template", (el, j) => fillFailure(el, j, now));
    sync($("finished"), snap.finished || [], (j) => j.id, "finished-template", (el, j) => fillFinished(el, j, now));
    const titles = new Map(snap.running.map((j) => [j.id, j.video_title]));
    sync($("workers"), snap.workers, (w) => w.name, "worker-template", (el, w) => fillWorker(el, w, titles, now));
    charts.update(snap.history);
  }

  // ---- actions ------------------------------------------------------------------------------------
  let statusTimer = null;
  function say(text, isError = false) {
    const status = $("action-status");
    status.textContent = text;
    status.classList.toggle("error", isError);
    status.hidden = false;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => { status.hidden = true; }, 6000);
  }

  async function act(button, path, body, done) {
    button.disabled = true;
    try {
      const response = await fetch(path, {
        method: "POST",
        headers: body ? { "Content-Type": "application/json", Accept: "application/json" } : { Accept: "application/json" },
        body: body ? JSON.stringify(body) : undefined,
      });
      const answer = await response.json().catch(() => ({}));
      if (response.status === 401 || response.status === 403) refuse(UI.detail(answer, "Operators only."));
      else if (!response.ok) say(UI.detail(answer, `refused (${response.status})`), true);
      else say(done(answer));
    } catch (_err) {
      say("The server did not answer; try again.", true);
    } finally {
      button.disabled = false;
    }
  }

  function wire(el) {
    const job = () => el.item;
    el.querySelector(".cancel")?.addEventListener("click", (ev) =>
      act(ev.currentTarget, `/api/v1/ops/jobs/${job().id}/cancel`, null, (j) =>
        j.state === "cancelled" ? `Cancelled “${j.video_title}”.` : `Stopping “${j.video_title}”…`));
    el.querySelector(".raise")?.addEventListener("click", (ev) => {
      const priority = Math.min(PRIORITY_MAX, job().priority + PRIORITY_STEP);
      act(ev.currentTarget, `/api/v1/ops/jobs/${job().id}/priority`, { priority }, (j) =>
        `“${j.video_title}” is now #${j.position} (priority ${j.priority}).`);
    });
    el.querySelector(".retry")?.addEventListener("click", (ev) =>
      act(ev.currentTarget, `/api/v1/ops/jobs/${job().id}/retry`, null, (j) => `“${j.video_title}” is queued again.`));
  }

  // ---- history charts (uPlot) ---------------------------------------------------------------------
  const charts = (() => {
    const AXIS = { stroke: "#9aa0a6", grid: { stroke: "#23262d", width: 1 }, ticks: { stroke: "#2a2d34", width: 1 } };
    const HEIGHT = 200;
    let throughput = null;
    let speedChart = null;
    let drawn = "";

    const width = (el) => Math.max(240, el.clientWidth);
    const fromZero = (_u, _min, max) => [0, Math.max(1, max * 1.1)];
    const padHour = (_u, min, max) => [min - 1800, max + 1800]; // room for the first and last bars
    const COUNT_AXIS = { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] }; // whole jobs only

    function make(el, series, axes, data) {
      return new uPlot({ width: width(el), height: HEIGHT, series, axes,
        scales: { x: { time: true, range: padHour }, y: { range: fromZero }, y2: { range: fromZero } },
        legend: { live: true }, cursor: { points: { size: 6 } } }, data, el);
    }

    function update(history) {
      const key = JSON.stringify(history);
      if (key === drawn) return; // the history changes once a job finishes, not every second
      drawn = key;
      const xs = history.map((h) => Date.parse(h.hour) / 1000);
      const jobs = history.map((h) => h.jobs);
      const minutes = history.map((h) => Math.round(h.encoded_minutes * 100) / 100);
      const speeds = history.map((h) => (h.mean_speed == null ? null : Math.round(h.mean_speed * 100) / 100));
      if (!throughput) {
        throughput = make($("chart-throughput"), [
          {},
          { label: "jobs/h", scale: "y", stroke: "#4f8cff", fill: "rgba(79,140,255,.35)",
            paths: uPlot.paths.bars({ size: [0.6, 40] }), points: { show: false } },
          { label: "encoded min/h", scale: "y2", stroke: "#8fd19e", width: 2 },
        ], [AXIS, { ...AXIS, ...COUNT_AXIS, scale: "y", size: 40 },
          { ...AXIS, scale: "y2", side: 1, size: 44, grid: { show: false } }],
        [xs, jobs, minutes]);
        speedChart = make($("chart-speed"), [
          {},
          { label: "× real time", scale: "y", stroke: "#f6c177", width: 2, spanGaps: false,
            points: { show: true, size: 6, fill: "#f6c177" } },
        ], [AXIS, { ...AXIS, scale: "y", size: 48 }], [xs, speeds]);
      } else {
        throughput.setData([xs, jobs, minutes]);
        speedChart.setData([xs, speeds]);
      }
    }

    window.addEventListener("resize", () => {
      for (const [chart, id] of [[throughput, "chart-throughput"], [speedChart, "chart-speed"]]) {
        if (chart) chart.setSize({ width: width($(id)), height: HEIGHT });
      }
    });
    return { update };
  })();

  // ---- live connection ----------------------------------------------------------------------------
  const live = $("live");
  let lastMessage = 0;

  function refuse(detail) {
    state.refused = detail;
    if (source) source.close();
    $("dashboard").hidden = true;
    const box = $("refused");
    box.querySelector("p").textContent = detail;
    box.hidden = false;
    live.textContent = "Not live";
    live.dataset.state = "refused";
  }

  async function checkAccess() {
    try {
      const response = await fetch("/api/v1/ops/snapshot", { headers: { Accept: "application/json" } });
      if (response.status === 401 || response.status === 403) {
        refuse(UI.detail(await response.json().catch(() => null), "Operators only."));
      }
    } catch (_err) {
      // the server is down: EventSource keeps retrying on its own
    }
  }

  let source = null;
  function connect() {
    source = new EventSource("/api/v1/ops/events");
    source.onmessage = (event) => {
      const snap = JSON.parse(event.data);
      state.last = snap;
      state.snapshots += 1;
      lastMessage = Date.now();
      render(snap);
      live.textContent = `Live · updated ${new Date(snap.at).toLocaleTimeString()}`;
      live.dataset.state = "live";
    };
    source.onerror = () => {
      if (state.refused) return;
      live.textContent = "Connection lost, reconnecting…";
      live.dataset.state = "reconnecting";
      checkAccess(); // a signed-out or demoted operator gets the refusal, not an endless retry
    };
  }

  setInterval(() => {
    if (!state.refused && lastMessage && Date.now() - lastMessage > STALE_MS) {
      live.textContent = "Not updating: waiting for the server…";
      live.dataset.state = "stale";
    }
  }, 2000);

  connect();
})();

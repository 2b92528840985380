// One job, for operators (GET /api/v1/ops/jobs/{id}): the ladder it chose (each rung kept or dropped, and why),
// each rendition's bit rate and measured VMAF, the loudness measured and the gain applied, and notes on what the
// job went on without. Polls while something is still to come: the encode, or the VMAF measured after `ready`.
// Everything from the API goes in as textContent.
(() => {
  const UI = StreamifyUI;
  const $ = (id) => document.getElementById(id);
  const jobId = $("ops-page").dataset.job;
  const POLL_MS = 2000;
  const MEASURING_POLLS = 60; // after `ready`, about two minutes for the VMAF to land
  const state = { loads: 0, last: null, measuringPolls: 0 }; // read by the browser tests
  window.streamifyJob = state;

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    td.className = className;
    return td;
  }

  const vmafFailed = (job) => job.notes.some((n) => n.kind === "vmaf_failed");
  const videoRungs = (job) => job.renditions.filter((r) => r.width != null);

  function vmafText(job, rung, rendition) {
    if (!rung.kept) return "–";
    if (rendition && rendition.vmaf != null) return rendition.vmaf.toFixed(1);
    if (job.state !== "succeeded") return "–";
    return vmafFailed(job) ? "not measured" : "measuring…";
  }

  function renderLadder(job) {
    const byName = new Map(job.renditions.map((r) => [r.name, r]));
    // Before the ladder was recorded on the job (an encode from before per-title ladders): the renditions alone.
    const rungs = job.ladder ? job.ladder.rungs : videoRungs(job).map((r) => ({ name: r.name, kept: true }));
    $("ladder-mode").textContent = !job.ladder ? "Ladder decision not recorded for this encode."
      : job.ladder.mode === "per_title" ? "Per-title ladder: chosen from measurements of this source."
        : "Fixed ladder: the same rungs and caps for every source.";
    $("rungs").tBodies[0].replaceChildren(...rungs.map((rung) => {
      const r = byName.get(rung.name);
      const tr = document.createElement("tr");
      tr.dataset.rung = rung.name;
      tr.className = rung.kept ? "kept" : "dropped";
      const control = [rung.crf != null ? `CRF ${rung.crf}` : "", rung.maxrate_kbps ? `cap ${rung.maxrate_kbps} kb/s` : ""]
        .filter(Boolean).join(" · ");
      tr.append(
        cell(rung.kept ? rung.name : `${rung.name} (dropped)`, "rung-name"),
        cell(r ? UI.bitRate(r.average_bandwidth) : "–", "rate"),
        cell(vmafText(job, rung, r), "vmaf"),
        cell(control || "–", "control"),
        cell(rung.reason || "", "why"),
      );
      return tr;
    }));
  }

  const signed = (x, digits = 1) => `${x > 0 ? "+" : x < 0 ? "−" : ""}${Math.abs(x).toFixed(digits)}`;
  const level = (x) => (x == null ? "?" : signed(x));

  function loudnessText(job) {
    const l = job.loudness;
    if (!l) return job.state === "succeeded" ? "Not measured: no audio, or an encode from before loudness normalization."
      : "Not measured yet.";
    const input = `Input ${level(l.input_i)} LUFS integrated, true peak ${level(l.input_tp)} dBTP`
      + (l.sampled ? " (measured on samples)" : "");
    if (l.silent) return `${input}: silent, left as it is.`;
    const gain = l.gain_db == null ? "no gain" : `gain ${signed(l.gain_db)} dB`;
    const target = l.target_i == null ? "" : ` toward ${level(l.target_i)} LUFS`;
    const ceiling = l.target_tp == null ? "" : `, true peak ≤ ${level(l.target_tp)} dBTP`;
    return `${input} → ${gain}${target}${ceiling}${l.limited ? " (held back by the true-peak ceiling)" : ""}.`;
  }

  function renderNotes(job) {
    $("notes").replaceChildren(...job.notes.map((n) => {
      const li = document.createElement("li");
      li.dataset.kind = n.kind;
      const kind = Object.assign(document.createElement("span"), { className: "kind", textContent: n.kind });
      const message = Object.assign(document.createElement("span"), { className: "message", textContent: n.message });
      li.append(kind, message);
      return li;
    }));
    document.querySelector('[data-empty-for="notes"]').hidden = job.notes.length > 0;
  }

  function render(job) {
    $("job-title").textContent = job.video_title;
    document.title = `${job.video_title} · Job · Streamify`;
    $("job-state").textContent = job.state;
    $("job-owner").textContent = job.owner_name;
    $("job-duration").textContent = job.duration != null ? UI.clockDuration(job.duration) : "";
    renderLadder(job);
    $("loudness").textContent = loudnessText(job);
    renderNotes(job);
    $("job").hidden = false;
  }

  function waiting(job) {
    if (job.state === "queued" || job.state === "running") return true;
    const unmeasured = job.state === "succeeded" && videoRungs(job).some((r) => r.vmaf == null) && !vmafFailed(job);
    return unmeasured && state.measuringPolls++ < MEASURING_POLLS;
  }

  async function load() {
    let response;
    try {
      response = await fetch(`/api/v1/ops/jobs/${encodeURIComponent(jobId)}`, { headers: { Accept: "application/json" } });
    } catch (_err) {
      setTimeout(load, POLL_MS * 2); // the server is away for a moment
      return;
    }
    if (!response.ok) {
      $("job").hidden = true;
      const box = $("job-error");
      box.textContent = response.status === 404 ? "No such job: it was deleted with its video, or never existed."
        : await UI.problem(response);
      box.hidden = false;
      return;
    }
    const job = await response.json();
    state.last = job;
    state.loads += 1;
    render(job);
    if (waiting(job)) setTimeout(load, POLL_MS);
  }

  load();
})();

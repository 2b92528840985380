// Library page: the signed-in creator's own videos (GET /api/v1/me/videos) with live processing progress,
// search, pages, inline edit (PATCH), delete after a confirmation (DELETE) and a captions panel per video.
// Every piece of user text is set with textContent; nothing the API returns is parsed as HTML.
(() => {
  const UI = StreamifyUI;
  const PER_PAGE = 10;
  const POLL_MS = 1500; // the worker writes progress at most once a second
  const HIDDEN_POLL_MS = 6000; // a background tab still notices a finished video, just later
  const SEARCH_DELAY_MS = 350;
  // After `ready`, a row keeps polling this many times (~a minute) for its rungs' VMAF (measured after publishing).
  const QUALITY_POLLS = 40;
  const TERMINAL = new Set(["ready", "failed", "cancelled"]);
  const STATUS_TEXT = {
    importing: "Importing", uploaded: "Uploaded", queued: "Waiting", processing: "Processing", ready: "Ready",
    failed: "Failed", cancelled: "Cancelled",
  };
  const VISIBILITY_TEXT = { public: "Public", unlisted: "Unlisted", private: "Private" };

  const $ = (id) => document.getElementById(id);
  const list = $("rows");
  const rowTemplate = $("row-template");
  const captionTemplate = $("caption-template");
  const dialog = $("confirm-delete");
  const query = UI.readQuery();
  const state = {
    q: query.q, page: query.page, perPage: query.perPage || PER_PAGE, total: 0, offset: 0,
    rows: new Map(), // video id -> {el, video}
    loadSeq: 0, pollTimer: null, pendingDelete: null,
  };

  // ---- loading a page ---------------------------------------------------------------------------------
  async function load() {
    const result = await UI.fetchListPage("/api/v1/me/videos", state, PER_PAGE);
    if (result.stale) return; // a newer search or page won
    $("checking").hidden = true;
    if (result.response?.status === 401) {
      $("library").hidden = true;
      $("signin").hidden = false;
      return;
    }
    if (!result.page) {
      listError(result.error || (await UI.problem(result.response)));
      return;
    }
    $("library").hidden = false;
    $("list-error").hidden = true;
    render(result.page);
  }

  function listError(message) {
    $("checking").hidden = true;
    $("library").hidden = false;
    $("list-error").textContent = message;
    $("list-error").hidden = false;
  }

  function render(page) {
    state.total = page.total;
    state.offset = page.offset;
    state.rows.clear();
    list.replaceChildren(...page.items.map(buildRow));
    refreshChrome();
    schedulePoll();
  }

  /** Pager and empty state, from what is on the page now. */
  function refreshChrome() {
    const empty = state.q ? `No videos with “${state.q}” in their title.` : "You have not uploaded any videos yet.";
    UI.listFooter(state, { total: state.total, offset: state.offset, count: state.rows.size }, empty, load);
  }

  // ---- one row ----------------------------------------------------------------------------------------
  function buildRow(video) {
    const el = rowTemplate.content.firstElementChild.cloneNode(true);
    const q = (selector) => el.querySelector(selector);
    const row = { el, video };
    state.rows.set(video.id, row);
    q(".edit").addEventListener("click", () => toggleEdit(row));
    q(".edit-form .cancel").addEventListener("click", () => toggleEdit(row, false));
    q(".edit-form").addEventListener("submit", (event) => { event.preventDefault(); save(row); });
    q(".delete").addEventListener("click", () => askDelete(row));
    q(".captions-toggle").addEventListener("click", () => toggleCaptions(row));
    q(".revoke-links").addEventListener("click", () => revokeLinks(row));
    q(".caption-form").addEventListener("submit", (event) => { event.preventDefault(); attachCaption(row); });
    fill(row);
    return el;
  }

  /** Everything in a row that comes from the video; never touches an open edit or captions form. */
  function fill(row) {
    const { el, video: v } = row;
    const q = (selector) => el.querySelector(selector);
    const watch = UI.sitePath(v.watch_url, `/watch/${encodeURIComponent(v.id)}`);
    el.dataset.id = v.id;
    el.dataset.status = v.status;
    el.dataset.visibility = v.visibility;
    q(".thumb").href = watch;
    q(".watch").href = watch;
    const title = q(".lib-title");
    title.href = watch;
    title.textContent = v.title;

    const poster = q(".poster");
    if (v.poster_url) {
      if (poster.dataset.src !== v.poster_url) { // a SAS URL changes per answer only when it is re-signed
        poster.dataset.src = v.poster_url;
        poster.src = v.poster_url;
      }
      poster.hidden = false;
    } else {
      poster.hidden = true;
      poster.removeAttribute("src");
    }
    q(".thumb-empty").textContent = v.poster_url ? "" : placeholder(v);
    const length = UI.clockDuration(v.duration);
    q(".duration").textContent = length;
    q(".duration").hidden = !length;
    q(".duration-text").textContent = length;

    const working = !TERMINAL.has(v.status);
    const pct = Math.round(Math.min(1, Math.max(0, v.progress || 0)) * 100);
    const status = q(".badge.status");
    status.textContent = v.status === "processing" ? `Processing ${pct}%`
      : v.status === "importing" && pct ? `Importing ${pct}%` : STATUS_TEXT[v.status] || v.status;
    status.className = `badge status status-${v.status}`;
    const visibility = q(".badge.visibility");
    visibility.textContent = VISIBILITY_TEXT[v.visibility] || v.visibility;
    visibility.className = `badge visibility visibility-${v.visibility}`;
    q(".created").textContent = UI.date(v.created_at);

    q(".processing").hidden = !working;
    const bar = q(".processing .bar");
    if (v.status === "processing" || (v.status === "importing" && v.progress)) bar.value = v.progress || 0;
    else bar.removeAttribute("value"); // indeterminate while waiting for a worker
    q(".processing .pct").textContent = v.status === "processing" ? `${pct}%`
      : v.status === "queued" ? "Waiting for a worker…"
      : v.status === "importing" ? `Downloading from the URL… ${pct ? `${pct}%` : ""}` : "Preparing…";

    // Progressive publish: the start of a video still encoding already plays.
    const playable = v.status === "processing" && v.playable;
    q(".playable").hidden = !playable;
    q(".playable-text").textContent = playable
      ? `Playable · ${UI.clockDuration(Math.floor(v.encoded_seconds || 0))} of ${UI.clockDuration(v.duration)} encoded`
      : "";
    q(".watch-now").href = watch;

    const error = q(".video-error");
    error.hidden = v.status !== "failed" && v.status !== "cancelled";
    error.textContent = v.status === "failed" ? `Processing failed: ${v.error || "no reason was recorded."}`
      : v.status === "cancelled" ? "Processing was cancelled by an operator." : "";

    // Each rendition once ready: "1080p · 4.1 Mb/s · VMAF 94" (the VMAF appears once it is measured).
    const renditions = q(".renditions");
    const lines = v.status === "ready" ? (v.renditions || []).map(UI.renditionLine) : [];
    if ([...renditions.children].map((li) => li.textContent).join("\n") !== lines.join("\n")) {
      const item = (line) => Object.assign(document.createElement("li"), { textContent: line });
      renditions.replaceChildren(...lines.map(item));
    }
    if (!TERMINAL.has(v.status)) row.encodedHere = true; // it turns ready on this page: its VMAF follows
    renditions.hidden = lines.length === 0;

    const description = q(".description");
    description.textContent = v.description;
    description.hidden = !v.description;
  }

  /** A video that turned ready on this page with rungs not measured yet: its VMAF lands a little after `ready`. */
  function measuring(row) {
    const v = row.video;
    return row.encodedHere && v.status === "ready" && v.has_video && (row.qualityPolls || 0) < QUALITY_POLLS
      && (v.renditions || []).some((r) => r.vmaf == null);
  }

  function placeholder(v) {
    if (v.status === "failed") return "Failed";
    if (v.status === "cancelled") return "Cancelled";
    if (!TERMINAL.has(v.status)) return "Processing…";
    return v.has_video ? "No poster" : "Audio only";
  }

  function rowError(row, message) {
    const box = row.el.querySelector(".row-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function removeRow(row) {
    state.rows.delete(row.video.id);
    row.el.remove();
    state.total = Math.max(0, state.total - 1);
    if (state.rows.size === 0 && state.total > 0) {
      load(); // the page emptied: show what is left
    } else {
      refreshChrome();
    }
  }

  // ---- live progress ----------------------------------------------------------------------------------
  function schedulePoll() {
    if (state.pollTimer !== null) return;
    const working = [...state.rows.values()].some((r) => !TERMINAL.has(r.video.status) || measuring(r));
    if (!working) return;
    state.pollTimer = setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  async function poll() {
    const working = [...state.rows.values()].filter((r) => !TERMINAL.has(r.video.status) || measuring(r));
    for (const row of working) if (TERMINAL.has(row.video.status)) row.qualityPolls = (row.qualityPolls || 0) + 1;
    await Promise.all(working.map(async (row) => {
      try {
        const response = await fetch(`/api/v1/videos/${encodeURIComponent(row.video.id)}`);
        if (response.status === 404) { // deleted elsewhere (another tab, the CLI)
          if (state.rows.get(row.video.id) === row) removeRow(row);
          return;
        }
        if (!response.ok) return;
        row.video = await response.json();
        fill(row);
      } catch (_err) {
        // offline for a moment: the next poll catches up
      }
    }));
    state.pollTimer = null;
    schedulePoll();
  }

  // ---- edit -------------------------------------------------------------------------------------------
  function toggleEdit(row, open) {
    const form = row.el.querySelector(".edit-form");
    const show = open === undefined ? form.hidden : open;
    form.hidden = !show;
    row.el.querySelector(".edit").setAttribute("aria-expanded", String(show));
    row.el.classList.toggle("editing", show);
    if (show) {
      const fields = form.elements;
      fields.title.value = row.video.title;
      fields.description.value = row.video.description;
      fields.visibility.value = row.video.visibility;
      downloadChoices(fields.downloads, row.video);
      formError(form, "");
      fields.title.focus();
    }
  }

  /** Off, the best rung, or one H.264 rung of the video's (an MP4 of it, and the M4A of the audio). */
  function downloadChoices(select, v) {
    const rungs = (v.renditions || []).filter((r) => r.width != null && r.codecs.startsWith("avc1"));
    select.replaceChildren(...[["off", "Off"], ["top", "MP4 of the best quality, and M4A"],
      ...rungs.map((r) => [r.name, `MP4 ${r.name}, and M4A`])].map(([value, text]) => new Option(text, value)));
    const mp4 = (v.downloads || []).find((d) => d.kind === "video");
    let current = (v.downloads || []).length ? "top" : "off";
    if (mp4 && mp4.rendition && rungs.length && mp4.rendition !== rungs[0].name) current = mp4.rendition;
    select.value = current;
    select.dataset.initial = current;
  }

  async function save(row) {
    const form = row.el.querySelector(".edit-form");
    const fields = form.elements; // not form.title: that is the form's own title attribute
    const changes = {
      title: fields.title.value.trim(),
      description: fields.description.value,
      visibility: fields.visibility.value,
    };
    // Sent only when changed: the same choice again would make the files again.
    const downloads = fields.downloads.value;
    if (downloads !== fields.downloads.dataset.initial) {
      changes.downloads = downloads === "off"
        ? { enabled: false }
        : { enabled: true, rendition: downloads === "top" ? null : downloads };
    }
    if (!changes.title) {
      formError(form, "Title: must not be blank.");
      return;
    }
    form.querySelector(".save").disabled = true;
    try {
      const response = await fetch(`/api/v1/videos/${encodeURIComponent(row.video.id)}`, {
        method: "PATCH",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(changes),
      });
      if (!response.ok) {
        formError(form, await UI.problem(response));
        return;
      }
      row.video = await response.json();
      fill(row);
      toggleEdit(row, false);
      flash(row, "Saved.");
    } catch (_err) {
      formError(form, "Could not reach the server: nothing was saved.");
    } finally {
      form.querySelector(".save").disabled = false;
    }
  }

  function flash(row, message) {
    const note = row.el.querySelector(".row-note");
    note.textContent = message;
    note.hidden = false;
    clearTimeout(row.noteTimer);
    row.noteTimer = setTimeout(() => { note.hidden = true; }, 2500);
  }

  function formError(form, message) {
    const box = form.querySelector(".form-error");
    box.textContent = message;
    box.hidden = !message;
  }

  // ---- delete -----------------------------------------------------------------------------------------
  function askDelete(row) {
    state.pendingDelete = row;
    $("confirm-video").textContent = row.video.title;
    dialog.returnValue = "";
    dialog.showModal();
  }

  dialog.addEventListener("close", async () => {
    const row = state.pendingDelete;
    state.pendingDelete = null;
    if (!row || dialog.returnValue !== "delete") return;
    const button = row.el.querySelector(".delete");
    button.disabled = true;
    row.el.classList.add("deleting");
    rowError(row, "");
    try {
      const response = await fetch(`/api/v1/videos/${encodeURIComponent(row.video.id)}`, { method: "DELETE" });
      if (response.status === 204 || response.status === 404) {
        removeRow(row);
        return;
      }
      rowError(row, `Not deleted: ${await UI.problem(response)}`);
    } catch (_err) {
      rowError(row, "Not deleted: could not reach the server.");
    }
    button.disabled = false;
    row.el.classList.remove("deleting");
  });

  // ---- revoke playback links --------------------------------------------------------------------------
  // Every playback link (and signed media URL) handed out so far stops working; new links work again.
  async function revokeLinks(row) {
    const question = `Revoke every playback link of "${row.video.title}" shared so far? New links can be made afterwards.`;
    if (!window.confirm(question)) return;
    const button = row.el.querySelector(".revoke-links");
    button.disabled = true;
    rowError(row, "");
    try {
      const url = `/api/v1/videos/${encodeURIComponent(row.video.id)}/playback-token/revoke`;
      const response = await fetch(url, { method: "POST" });
      if (response.status === 204) flash(row, "Playback links revoked.");
      else rowError(row, `Links not revoked: ${await UI.problem(response)}`);
    } catch (_err) {
      rowError(row, "Links not revoked: could not reach the server.");
    } finally {
      button.disabled = false;
    }
  }

  // ---- captions ---------------------------------------------------------------------------------------
  function captionsUrl(row, language) {
    const base = `/api/v1/videos/${encodeURIComponent(row.video.id)}/captions`;
    return language === undefined ? base : `${base}/${encodeURIComponent(language)}`;
  }

  function toggleCaptions(row) {
    const panel = row.el.querySelector(".captions-panel");
    panel.hidden = !panel.hidden;
    row.el.querySelector(".captions-toggle").setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) loadCaptions(row);
  }

  async function loadCaptions(row) {
    const panel = row.el.querySelector(".captions-panel");
    const status = panel.querySelector(".captions-status");
    let response;
    try {
      response = await fetch(captionsUrl(row), { headers: { Accept: "application/json" } });
    } catch (_err) {
      status.textContent = "Could not reach the server.";
      return;
    }
    if (!response.ok) {
      status.textContent = `Captions could not be listed: ${await UI.problem(response)}`;
      return;
    }
    const body = await response.json();
    const captions = Array.isArray(body) ? body : [];
    panel.querySelector(".caption-list").replaceChildren(...captions.map((c) => captionItem(row, c)));
    status.textContent = captions.length ? "" : "No captions yet. Attach a WebVTT or SRT file below.";
    status.hidden = captions.length > 0;
    row.el.querySelector(".captions-toggle").textContent = captions.length ? `Captions (${captions.length})` : "Captions";
  }

  function captionItem(row, caption) {
    const el = captionTemplate.content.firstElementChild.cloneNode(true);
    el.dataset.language = caption.language;
    el.querySelector(".caption-label").textContent = caption.label || caption.language;
    el.querySelector(".caption-lang").textContent = caption.language;
    el.querySelector(".caption-default").hidden = !caption.is_default;
    const remove = el.querySelector(".caption-delete");
    remove.setAttribute("aria-label", `Remove ${caption.label || caption.language} captions`);
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      const form = row.el.querySelector(".caption-form");
      try {
        const response = await fetch(captionsUrl(row, caption.language), { method: "DELETE" });
        if (!response.ok && response.status !== 404) {
          formError(form, `Not removed: ${await UI.problem(response)}`);
          remove.disabled = false;
          return;
        }
        formError(form, "");
        loadCaptions(row);
      } catch (_err) {
        formError(form, "Not removed: could not reach the server.");
        remove.disabled = false;
      }
    });
    return el;
  }

  async function attachCaption(row) {
    const form = row.el.querySelector(".caption-form");
    const button = form.querySelector(".attach");
    const data = new FormData(form);
    if (!String(data.get("label") || "").trim()) data.delete("label"); // the API names the language itself
    data.set("language", String(data.get("language") || "").trim());
    button.disabled = true;
    formError(form, "");
    try {
      const response = await fetch(captionsUrl(row), { method: "POST", body: data });
      if (!response.ok) {
        formError(form, await UI.problem(response));
        return;
      }
      form.reset();
      await loadCaptions(row);
    } catch (_err) {
      formError(form, "Could not reach the server: the captions were not attached.");
    } finally {
      button.disabled = false;
    }
  }

  UI.listSearch(state, load, SEARCH_DELAY_MS);

  window.streamifyLibrary = state; // for a look from the console
  load();
})();

// Upload page: resumable uploads with tus-js-client (per-file metadata, progress, pause/resume,
// refusals), imports from a URL (POST /api/v1/videos/import), then each new video's status until it is ready.
(() => {
  const UI = StreamifyUI;
  const ENDPOINT = "/api/v1/uploads/";
  const VIDEO_ID_HEADER = "Streamify-Video-Id";
  const CHUNK_BYTES = 8 * 1024 * 1024; // each PATCH is a checkpoint; a cut loses nothing the server has
  const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];
  const SPEED_WINDOW_MS = 5000;
  // Asking what became of a complete upload: every second at first, less often the longer it takes, and not
  // forever (the server's check of a file takes seconds; a quarter of an hour means something is stuck).
  const INGEST_POLL_FIRST_MS = 1000;
  const INGEST_POLL_MAX_MS = 15000;
  const INGEST_POLL_BACKOFF = 1.5;
  // Longer than the server's STREAMIFY_TUS_INGEST_TIMEOUT_SECONDS (15 min), after which it answers "refused".
  const INGEST_GIVE_UP_MS = 20 * 60 * 1000;

  const root = document.getElementById("upload-page");
  const maxBytes = Number(root.dataset.maxBytes);
  const queue = document.getElementById("queue");
  const template = document.getElementById("item-template");
  const state = { userId: null, items: [] }; // read by the browser tests
  window.streamifyUploads = state;

  // ---- formatting -------------------------------------------------------------------------------
  function formatBytes(n) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return `${n.toFixed(n < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
  }

  function stem(name) {
    const dot = name.lastIndexOf(".");
    return (dot > 0 ? name.slice(0, dot) : name).slice(0, 200);
  }

  // ---- resumability: fingerprints are per signed-in user, so another account never resumes them --
  function fingerprintOf(file) {
    return ["streamify", state.userId, file.name, file.type, file.size, file.lastModified].join("-");
  }

  function storage() {
    return tus.defaultOptions.urlStorage;
  }

  async function previousUploadFor(file) {
    const found = await storage().findUploadsByFingerprint(fingerprintOf(file));
    found.sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)));
    return found[0] || null;
  }

  async function forgetUrl(url) {
    for (const entry of await storage().findAllUploads()) {
      if (entry.uploadUrl === url) await storage().removeUpload(entry.urlStorageKey);
    }
  }

  async function headUpload(url) {
    try {
      const r = await fetch(url, { method: "HEAD", headers: { "Tus-Resumable": "1.0.0" } });
      if (!r.ok) return null;
      return { offset: Number(r.headers.get("Upload-Offset")), length: Number(r.headers.get("Upload-Length")) };
    } catch (_err) {
      return undefined; // offline: keep the entry
    }
  }

  async function listUnfinished() {
    const box = document.getElementById("unfinished");
    const list = document.getElementById("unfinished-list");
    const mine = `tus::streamify-${state.userId}-`;
    list.replaceChildren();
    for (const entry of await storage().findAllUploads()) {
      if (!entry.urlStorageKey.startsWith(mine)) continue;
      const head = await headUpload(entry.uploadUrl);
      if (head === null) { // expired, refused or finished on the server: nothing left to resume
        await storage().removeUpload(entry.urlStorageKey);
        continue;
      }
      const li = document.createElement("li");
      const name = (entry.metadata && entry.metadata.filename) || "file";
      const done = head ? ` — ${Math.floor((100 * head.offset) / head.length)}% received` : "";
      li.textContent = `${name} (${formatBytes(entry.size)})${done} `;
      const discard = document.createElement("button");
      discard.type = "button";
      discard.textContent = "Discard";
      discard.addEventListener("click", async () => {
        try { await tus.Upload.terminate(entry.uploadUrl); } catch (_err) { /* already gone */ }
        await storage().removeUpload(entry.urlStorageKey);
        li.remove();
        box.hidden = list.children.length === 0;
      });
      li.append(discard);
      list.append(li);
    }
    box.hidden = list.children.length === 0;
  }

  // ---- one file ---------------------------------------------------------------------------------
  function addFiles(files) {
    for (const file of files) addFile(file);
    document.getElementById("queue-head").hidden = state.items.length === 0;
  }

  function addFile(file) {
    const el = template.content.firstElementChild.cloneNode(true);
    const item = {
      file, el, upload: null, state: "queued", progress: 0, videoId: null, videoStatus: null, error: null,
      samples: [], url: null, previous: null,
    };
    const q = (sel) => el.querySelector(sel);
    item.q = q;
    q(".file-name").textContent = file.name;
    q(".file-size").textContent = formatBytes(file.size);
    q(".f-title").value = stem(file.name);
    q(".start").addEventListener("click", () => start(item));
    q(".pause").addEventListener("click", () => pause(item));
    q(".resume").addEventListener("click", () => resume(item));
    q(".remove").addEventListener("click", () => remove(item));
    queue.append(el);
    state.items.push(item);
    if (file.size > maxBytes) return refuse(item, `file too large: the limit is ${maxBytes} bytes (${formatBytes(maxBytes)})`);
    if (file.size === 0) return refuse(item, "empty file: the upload contains no bytes");
    previousUploadFor(file).then((prev) => {
      if (!prev || item.state !== "queued") return;
      item.previous = prev;
      const md = prev.metadata || {};
      q(".f-title").value = md.title || q(".f-title").value;
      q(".f-description").value = md.description || "";
      q(".f-visibility").value = md.visibility || "public";
      setFields(item, false);
      q(".start").textContent = "Resume upload";
      q(".state-text").textContent = "An unfinished upload of this file was found: it continues where it stopped.";
    });
    return item;
  }

  function setFields(item, enabled) {
    for (const sel of [".f-title", ".f-description", ".f-visibility"]) item.q(sel).disabled = !enabled;
  }

  function setState(item, value, text) {
    item.state = value;
    item.el.dataset.state = value;
    const q = item.q;
    const active = value === "uploading";
    q(".start").hidden = value !== "queued";
    q(".pause").hidden = !active;
    q(".resume").hidden = value !== "paused" && value !== "offline";
    if (text !== undefined) q(".state-text").textContent = text;
  }

  function showError(item, message) {
    item.error = message;
    const p = item.q(".error-text");
    p.textContent = message;
    p.hidden = !message;
  }

  function refuse(item, message) {
    setFields(item, false);
    setState(item, "refused", "");
    showError(item, message);
    item.q(".speed").textContent = "";
    item.q(".eta").textContent = "";
    return item;
  }

  async function start(item) {
    if (item.state !== "queued") return;
    const q = item.q;
    const title = q(".f-title").value.trim();
    if (!title) {
      q(".f-title").setCustomValidity("Give the video a title");
      q(".f-title").reportValidity();
      return;
    }
    q(".f-title").setCustomValidity("");
    setFields(item, false);
    showError(item, "");
    setState(item, "uploading", "Uploading…");
    const file = item.file;
    item.upload = new tus.Upload(file, {
      endpoint: ENDPOINT,
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      fingerprint: (f) => Promise.resolve(fingerprintOf(f)),
      metadata: {
        filename: file.name,
        filetype: file.type || "application/octet-stream",
        title,
        description: q(".f-description").value,
        visibility: q(".f-visibility").value,
      },
      onUploadUrlAvailable: () => { item.url = item.upload.url; },
      onProgress: (sent, total) => progress(item, sent, total),
      onSuccess: ({ lastResponse }) => finished(item, lastResponse),
      onError: (err) => failed(item, err),
    });
    if (item.previous) item.upload.resumeFromPreviousUpload(item.previous);
    item.upload.start();
  }

  function pause(item) {
    if (item.state !== "uploading") return;
    item.upload.abort(); // the server keeps every byte it received; resume asks it for the offset
    item.samples = [];
    setState(item, "paused", "Paused");
    item.q(".speed").textContent = "";
    item.q(".eta").textContent = "";
  }

  function resume(item) {
    if (item.state !== "paused" && item.state !== "offline") return;
    showError(item, "");
    setState(item, "uploading", "Resuming…");
    item.upload.start();
  }

  async function remove(item) {
    if (item.upload && ["uploading", "paused", "offline"].includes(item.state)) {
      try { await item.upload.abort(true); } catch (_err) { /* the server forgets it on expiry anyway */ }
    }
    item.stopped = true;
    item.el.remove();
    state.items = state.items.filter((i) => i !== item);
    document.getElementById("queue-head").hidden = state.items.length === 0;
  }

  function progress(item, sent, total) {
    const now = performance.now();
    item.progress = total ? sent / total : 0;
    item.samples.push([now, sent]);
    while (item.samples.length > 2 && now - item.samples[0][0] > SPEED_WINDOW_MS) item.samples.shift();
    const q = item.q;
    q(".bar").value = item.progress;
    q(".pct").textContent = `${Math.floor(item.progress * 100)}%`;
    const [t0, b0] = item.samples[0];
    const seconds = (now - t0) / 1000;
    if (seconds > 0.3 && sent > b0) {
      const speed = (sent - b0) / seconds;
      q(".speed").textContent = `${formatBytes(speed)}/s`;
      q(".eta").textContent = sent < total ? `${UI.humanDuration((total - sent) / speed)} left` : "";
    }
    if (sent === total && item.state === "uploading") {
      setState(item, "uploading", "Checking the file…");
      q(".eta").textContent = "";
    }
  }

  /** The refusal in tus-js-client's HttpResponse, as the API wrote it. */
  function detailOf(response) {
    return UI.detail(UI.parseJson(response.getBody()), UI.answered(response.getStatus()));
  }

  async function failed(item, err) {
    if (item.state === "refused" || item.stopped) return;
    const response = err.originalResponse;
    const status = response ? response.getStatus() : 0;
    item.samples = [];
    item.q(".speed").textContent = "";
    item.q(".eta").textContent = "";
    if (status === 401) {
      setState(item, "paused", "");
      showError(item, "Your session ended: sign in again (in another tab), then press Resume.");
    } else if (status >= 400 && status < 500 && status !== 409 && status !== 423) {
      if (item.url) await forgetUrl(item.url);
      refuse(item, `Refused: ${detailOf(response)}`);
    } else if (!navigator.onLine) {
      setState(item, "offline", "Offline: the upload continues when the connection is back.");
    } else {
      setState(item, "paused", "");
      showError(item, `Upload interrupted (${status ? detailOf(response) : "connection lost"}). Press Resume to continue.`);
    }
  }

  async function finished(item, lastResponse) {
    item.samples = [];
    item.q(".speed").textContent = "";
    item.q(".eta").textContent = "";
    item.q(".bar").value = 1;
    item.q(".pct").textContent = "100%";
    let videoId = lastResponse ? lastResponse.getHeader(VIDEO_ID_HEADER) : null;
    if (!videoId && item.upload.url) videoId = await waitForIngest(item);
    if (!videoId) return;
    item.videoId = videoId;
    const watch = item.q(".watch");
    watch.href = `/watch/${videoId}`;
    watch.hidden = false;
    setState(item, "processing", "Uploaded. Waiting for a transcoder…");
    followVideo(item);
  }

  // A resumed upload that was already complete (or whose last answer was lost): its video may still be being
  // checked and recorded. Ask GET /api/v1/uploads/{id} until it is done or refused, less often as time goes
  // by; a lost connection or a server error is retried and said on the item; after INGEST_GIVE_UP_MS, give up.
  async function waitForIngest(item) {
    const giveUpAt = Date.now() + INGEST_GIVE_UP_MS;
    let delay = INGEST_POLL_FIRST_MS;
    item.ingest = { checks: 0, waitMs: 0 }; // read by the browser tests
    while (!item.stopped) {
      const answer = await uploadStatus(item.upload.url);
      item.ingest.checks += 1;
      if (item.stopped) break;
      if (answer.videoId) return answer.videoId;
      if (answer.refused) { refuse(item, `Refused: ${answer.refused}`); return null; }
      if (Date.now() + delay > giveUpAt) {
        setState(item, "failed", "");
        showError(item, `Gave up after ${INGEST_GIVE_UP_MS / 60000} minutes: ${answer.why}. If the video is not`
          + " in your library, upload the file again.");
        return null;
      }
      setState(item, "checking", answer.text);
      item.ingest.waitMs = delay;
      await new Promise((ok) => setTimeout(ok, delay));
      delay = Math.min(INGEST_POLL_MAX_MS, delay * INGEST_POLL_BACKOFF);
    }
    return null;
  }

  /** One look at a complete upload: { videoId } done, { refused } for good, or { text, why } while it is not
   * known yet (`text` for the item now, `why` should this be the last look). */
  async function uploadStatus(url) {
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" } });
    } catch (_err) {
      return { text: "Connection lost while checking the file; retrying…", why: "the server could not be reached" };
    }
    const body = await response.json().catch(() => null);
    if (response.ok && body) {
      if (body.state === "done" && body.video_id) return { videoId: body.video_id };
      if (body.state === "refused") return { refused: body.error || "no reason given" };
      return { text: "Checking the file…", why: "the server was still checking the file" };
    }
    if (response.status === 401) {
      const text = "Your session ended: sign in again (in another tab) to see the result.";
      return { text, why: "your session ended" };
    }
    const answered = UI.answered(response.status, response.statusText);
    if (response.status >= 400 && response.status < 500) return { refused: UI.detail(body, answered) };
    return { text: `Checking the file: ${answered}; retrying…`, why: answered };
  }

  async function followVideo(item) {
    while (!item.stopped) {
      let v = null;
      try {
        const r = await fetch(`/api/v1/videos/${item.videoId}`);
        if (r.ok) v = await r.json();
      } catch (_err) { /* try again */ }
      if (v) {
        const wasImporting = item.videoStatus === "importing";
        item.videoStatus = v.status;
        if (v.status === "ready") { setState(item, "ready", "Ready to watch."); return; }
        if (v.status === "failed" || v.status === "cancelled") {
          setState(item, "failed", "");
          showError(item, `${wasImporting ? "Import" : "Processing"} ${v.status}: ${v.error || "no reason given"}`);
          return;
        }
        const pct = Math.round(v.progress * 100);
        const text = v.status === "processing" ? `Processing… ${pct}%`
          : v.status === "importing" ? `Downloading from the URL…${pct ? ` ${pct}%` : ""}`
          : `${item.file ? "Uploaded" : "Downloaded"}. Waiting for a transcoder…`;
        setState(item, "processing", text);
      }
      await new Promise((ok) => setTimeout(ok, 1500));
    }
  }

  // ---- import from a URL ------------------------------------------------------------------------
  /** Ask the server to import `body.url`; a refusal (a private address, not http(s)) is said under the form. */
  async function importUrl(body) {
    const error = document.getElementById("import-error");
    const button = document.getElementById("import-start");
    error.hidden = true;
    button.disabled = true;
    let response;
    try {
      response = await fetch("/api/v1/videos/import", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (_err) {
      response = null;
    } finally {
      button.disabled = false;
    }
    if (!response || !response.ok) {
      error.textContent = response ? `Refused: ${await UI.problem(response)}` : "Cannot reach the server; try again.";
      error.hidden = false;
      return null;
    }
    return response.json();
  }

  /** An imported video in the list: its download, then its processing, like an uploaded file's. */
  function addImport(video, url) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.kind = "import";
    const item = {
      file: null, el, upload: null, state: "processing", progress: 0, videoId: video.id, videoStatus: video.status,
      error: null, samples: [], url, previous: null,
    };
    const q = (sel) => el.querySelector(sel);
    item.q = q;
    q(".file-name").textContent = video.title;
    q(".file-size").textContent = url;
    setFields(item, false);
    const watch = q(".watch");
    watch.href = `/watch/${video.id}`;
    watch.hidden = false;
    q(".remove").addEventListener("click", () => remove(item));
    queue.prepend(el);
    state.items.push(item);
    document.getElementById("queue-head").hidden = false;
    setState(item, "processing", "Downloading from the URL…");
    followVideo(item);
    return item;
  }

  function wireImport() {
    const form = document.getElementById("import-form");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const url = document.getElementById("import-url").value.trim();
      const body = { url, visibility: document.getElementById("import-visibility").value };
      const title = document.getElementById("import-title").value.trim();
      if (title) body.title = title;
      const video = await importUrl(body);
      if (!video) return;
      form.reset();
      addImport(video, url);
    });
  }

  // ---- page -------------------------------------------------------------------------------------
  function wireDropZone() {
    const drop = document.getElementById("drop");
    const input = document.getElementById("file-input");
    input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
    for (const type of ["dragenter", "dragover"]) {
      drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
    }
    for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); addFiles(e.dataTransfer.files); });
    // A file dropped beside the zone must not navigate away from running uploads.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    document.getElementById("start-all").addEventListener("click", () => {
      for (const item of state.items) if (item.state === "queued") start(item);
    });
    window.addEventListener("online", () => {
      for (const item of state.items) if (item.state === "offline") resume(item);
    });
    window.addEventListener("beforeunload", (e) => {
      if (state.items.some((i) => i.state === "uploading")) e.preventDefault();
    });
  }

  async function init() {
    const checking = document.getElementById("checking");
    let response;
    try {
      response = await fetch("/api/v1/auth/me");
    } catch (_err) {
      checking.textContent = "Cannot reach the server. Reload the page to try again.";
      return;
    }
    checking.hidden = true;
    if (response.status === 401) {
      document.getElementById("signin").hidden = false;
      return;
    }
    state.userId = (await response.json()).id;
    if (!window.tus || !tus.isSupported) {
      checking.hidden = false;
      checking.textContent = "This browser cannot upload files here.";
      return;
    }
    document.getElementById("limit").textContent = `Up to ${formatBytes(maxBytes)} per file`;
    document.getElementById("uploader").hidden = false;
    wireDropZone();
    wireImport();
    listUnfinished();
  }

  init();
})();

// Watch page: follows a video through processing, then plays it with hls.js behind Plyr's controls.
// A video still encoding plays as soon as its start is published (the API says `playable`): its playlists are
// EVENT playlists that grow, which hls.js treats as live, so the player is told to start at 0 and never to
// chase the edge; a notice under the player says how much is ready, and seeks stop at the encoded edge.
// hls.js does the streaming; Plyr draws the controls: its quality menu is wired to hls.js levels, its
// caption menu lists the text tracks hls.js makes from the master playlist's subtitle renditions (a choice
// is handed back to hls.subtitleTrack), and its preview thumbnails read the storyboard WebVTT track.
(() => {
  "use strict";
  const UI = StreamifyUI;
  const root = document.getElementById("player");
  const id = root.dataset.videoId;
  const $ = (elementId) => document.getElementById(elementId);
  const video = $("video");
  const overlay = $("overlay");
  const AUTO = 0; // Plyr quality value for automatic selection; level i is value i + 1
  const MAX_RETRIES = 3;
  const GROWING_POLL_MS = 3000; // how often a page playing a video still encoding asks how far the encode got
  const STORYBOARD_POLLS = 20; // after a growing video is ready: how long to wait for its storyboard (x 3 s)
  const EDGE_MARGIN = 1; // seconds: a seek past the encoded edge lands this far before it, so something plays

  // Everything a test (or a curious developer) may want to look at, in one place.
  const state = {
    video: null, // the API's view of the video
    hls: null,
    plyr: null,
    levels: 0,
    renditions: [], // what the quality menu lists, best first: the API's, or the master's while it encodes
    labels: [], // labels[i]: what the quality menu calls hls.js level i ("720p")
    playingLevel: -1, // the level hls.js says is on screen (LEVEL_SWITCHED)
    loadedLevels: [], // the level of every main fragment hls.js loaded, in order
    message: null, // kind of the message shown over the player: processing, failed, unavailable, error
    errors: [],
    fatal: null,
    retries: 0,
    growing: false, // playing a video whose encode goes on: EVENT playlists, a moving edge
    clamped: 0, // seeks past the encoded edge brought back to it
    storyboardPolls: 0,
    previews: false, // Plyr's storyboard previews are on
    startAt: parseStart(new URLSearchParams(location.search).get("t")),
    // A private video's link from its owner (/watch/{id}?token=...): the API then answers with URLs that carry it.
    token: new URLSearchParams(location.search).get("token"),
  };
  window.streamify = window.streamifyPlayer = state;

  // ---- messages over the player -------------------------------------------------------------------
  function show(kind, text, progress, detail) {
    state.message = kind;
    overlay.hidden = false;
    overlay.dataset.kind = kind;
    overlay.classList.toggle("error", kind !== "processing");
    $("status-text").textContent = text;
    const bar = $("status-progress");
    bar.hidden = progress === undefined || progress === null;
    if (!bar.hidden) bar.value = progress;
    const more = $("status-detail");
    more.hidden = !detail;
    more.textContent = detail || "";
  }

  function hideMessage() {
    state.message = null;
    overlay.hidden = true;
  }

  function unavailable() {
    // The API answers 404 for a missing video and for someone else's private one: so does the page.
    $("details").hidden = true;
    document.title = "Video not available · Streamify";
    show("unavailable", "This video is not available.", null, "It may have been deleted, or it is private. Check the link, or sign in to the account that owns it.");
  }

  function failed(v) {
    if (v.status === "cancelled") {
      show("failed", "Processing was cancelled.", null, v.is_owner ? "Upload the file again to publish it." : "");
    } else if (v.is_owner) {
      show("failed", "Processing failed.", null, v.error ? `Reason: ${v.error}` : "No reason was recorded.");
    } else {
      show("failed", "This video could not be processed.", null, "");
    }
  }

  function processing(v) {
    if (v.status === "processing") {
      const pct = Math.round(v.progress * 100);
      show("processing", `Processing… ${pct}%`, v.progress, "The video starts here by itself when it is ready.");
    } else if (v.status === "importing") {
      show("processing", "Downloading the video from its URL…", v.progress || null,
        "The video starts here by itself when it is ready.");
    } else {
      show("processing", "Waiting for a transcoder…", null, "The video starts here by itself when it is ready.");
    }
  }

  // ---- title, owner, description ------------------------------------------------------------------
  function describe(v) {
    $("details").hidden = false;
    $("title").textContent = v.title;
    document.title = `${v.title} · Streamify`;
    $("owner").textContent = v.owner_name ? `by ${v.owner_name}` : "";
    $("published").textContent = UI.date(v.created_at);
    const badge = $("visibility");
    badge.hidden = v.visibility === "public";
    badge.textContent = v.visibility === "private" ? "Private" : "Unlisted";
    $("description").textContent = v.description || "";
    showDownloads(v);
  }

  // ---- downloads ----------------------------------------------------------------------------------
  // The owner's MP4 (a rung with the audio) and M4A, once made: plain links with the `download` attribute (a
  // same-origin file is saved under a readable name, and ?download=1 makes nginx send Content-Disposition:
  // attachment); the same URL without it plays inline. Pending ones say so until the worker has made them.
  function downloadName(v, d) {
    const base = (v.title || "video").replace(/[\\/:*?"<>|\u0000-\u001f]+/g, " ").trim().slice(0, 80) || "video";
    return d.kind === "video" ? `${base} (${d.rendition}).mp4` : `${base} (audio).m4a`;
  }

  function downloadHref(url) {
    if (!url.startsWith("/")) return url; // a CDN's or the blob store's own URL: its query is not ours to extend
    return url + (url.includes("?") ? "&" : "?") + "download=1";
  }

  function showDownloads(v) {
    const box = $("downloads");
    const items = (v.downloads || []).map((d) => {
      const li = document.createElement("li");
      li.dataset.kind = d.kind;
      li.dataset.status = d.status;
      const what = d.kind === "video" ? `MP4${d.rendition ? ` ${d.rendition}` : ""}` : "Audio (M4A)";
      if (d.status === "ready" && d.url) {
        const a = document.createElement("a");
        a.href = downloadHref(d.url);
        a.download = downloadName(v, d);
        a.textContent = d.size ? `${what} · ${megabytes(d.size)}` : what;
        li.append(a);
      } else {
        li.className = "muted";
        li.textContent = d.status === "failed" ? `${what}: not available${d.error ? ` (${d.error})` : ""}` : `${what}: being prepared…`;
      }
      return li;
    });
    $("download-list").replaceChildren(...items);
    box.hidden = items.length === 0;
  }

  function megabytes(bytes) {
    return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
  }

  const downloadsPending = (v) => (v.downloads || []).some((d) => d.status === "pending");

  // ---- still encoding, already playing ------------------------------------------------------------
  // How far playback can go now: the end of what hls.js has in its playlists (the media's seekable range,
  // which hls.js extends on every playlist refresh). The API's encoded_seconds may be a refresh ahead of it.
  function playableEdge() {
    const ranges = video.seekable;
    return ranges.length ? ranges.end(ranges.length - 1) : 0;
  }

  function encodingNotice(v) {
    const box = $("encoding");
    box.hidden = false;
    const ready = UI.clockDuration(Math.floor(v.encoded_seconds || 0));
    $("encoding-text").textContent = `Still encoding: ${ready} of ${UI.clockDuration(v.duration)} ready`;
    const bar = $("encoding-progress");
    bar.value = v.progress || 0;
    bar.setAttribute("aria-label", `${Math.round((v.progress || 0) * 100)}% encoded`);
    showEdge(v);
  }

  function encodingDone() {
    state.growing = false;
    $("encoding").hidden = true;
    const plyr = state.plyr;
    if (plyr) plyr.config.duration = null; // the media's own duration is the whole video now
    const mark = document.querySelector(".encoding-edge");
    if (mark) mark.remove();
  }

  // The seek bar spans the whole video (Plyr's `duration` option, from the API); the part not encoded yet is
  // hatched, and its start moves as the encode goes on.
  function showEdge(v) {
    const plyr = state.plyr;
    const track = plyr && plyr.elements.progress;
    if (!track || !v.duration) return;
    let mark = track.querySelector(".encoding-edge");
    if (!mark) {
      mark = document.createElement("span");
      mark.className = "encoding-edge";
      mark.title = "Still encoding";
      track.appendChild(mark);
    }
    const edge = Math.max(playableEdge(), 0);
    mark.style.left = `${Math.min(100, (edge / v.duration) * 100)}%`;
  }

  // A seek past what is encoded (the bar, the arrow and number keys) lands just before the edge instead.
  function clampSeek() {
    if (!state.growing) return;
    const edge = playableEdge();
    if (edge > 0 && video.currentTime > edge - EDGE_MARGIN / 2) {
      state.clamped += 1;
      video.currentTime = Math.max(0, edge - EDGE_MARGIN);
      $("encoding-detail").textContent = `Only the first ${UI.clockDuration(Math.floor(edge))} is ready so far.`;
    }
  }

  function atEdge() {
    if (state.growing && video.currentTime >= playableEdge() - EDGE_MARGIN) {
      $("encoding-detail").textContent = "Waiting for the next part to be encoded…";
    }
  }

  video.addEventListener("seeking", clampSeek);
  video.addEventListener("waiting", atEdge);
  video.addEventListener("playing", () => { $("encoding-detail").textContent = ""; });
  video.addEventListener("durationchange", () => { if (state.growing && state.video) showEdge(state.video); });

  async function poll() {
    let response;
    try {
      const query = state.token ? `?token=${encodeURIComponent(state.token)}` : "";
      response = await fetch(`/api/v1/videos/${id}${query}`, { headers: { Accept: "application/json" } });
    } catch {
      show("error", "Connection lost, retrying…");
      return setTimeout(poll, 2000);
    }
    if (response.status === 404) return unavailable();
    // A link that no longer opens the video (expired, revoked by its owner, tampered): say so, stop polling.
    if (response.status === 403) return show("error", await UI.problem(response));
    if (!response.ok) return setTimeout(poll, 2000);
    const v = await response.json();
    state.video = v;
    describe(v);
    if (v.status === "ready") {
      if (!state.plyr && !state.hls) {
        play(v);
        if (downloadsPending(v)) setTimeout(poll, GROWING_POLL_MS); // made after ready: links once they are
        return;
      }
      encodingDone(); // it was playing while encoding: hls.js reads ENDLIST on its next playlist refresh
      // Its storyboard is made after it is ready: the previews come on once the API names the track.
      if (v.storyboard_url && state.plyr) addPreviews(state.plyr, v.storyboard_url);
      else state.storyboardPolls += 1;
      const storyboardWait = !v.storyboard_url && v.has_video && state.storyboardPolls <= STORYBOARD_POLLS;
      if (storyboardWait || downloadsPending(v)) setTimeout(poll, GROWING_POLL_MS);
      return;
    }
    if (v.status === "failed" || v.status === "cancelled") {
      if (state.hls) state.hls.destroy();
      $("encoding").hidden = true;
      return failed(v);
    }
    if (v.status === "processing" && v.playable && v.playback_url) {
      state.growing = true;
      if (!state.plyr && !state.hls) play(v); // (Plyr comes after the master while it encodes: playWithHls)
      encodingNotice(v);
      return setTimeout(poll, GROWING_POLL_MS);
    }
    processing(v);
    setTimeout(poll, 1000);
  }

  // ---- playback ----------------------------------------------------------------------------------
  function play(v) {
    hideMessage();
    if (v.poster_url) video.poster = v.poster_url;
    if (state.startAt !== null && v.duration) state.startAt = Math.min(state.startAt, Math.max(0, v.duration - 1));
    if (state.startAt !== null && state.growing) {
      state.startAt = Math.min(state.startAt, Math.max(0, (v.encoded_seconds || 0) - EDGE_MARGIN));
    }
    // Plyr wraps the <video> in its own elements: that must happen before hls.js attaches a MediaSource,
    // or moving the element makes Chromium reload it.
    if (window.Hls && Hls.isSupported()) {
      state.renditions = oneCodec(v.renditions);
      // Still encoding, the API lists no renditions yet: the quality menu comes from the master playlist, so
      // Plyr is set up once hls.js has read it, and the media attached after that.
      if (!state.renditions.length && state.growing) return playWithHls(v, true);
      setupPlyr(v);
      return playWithHls(v);
    }
    if (video.canPlayType("application/vnd.apple.mpegurl")) {
      // Safari on iOS: native HLS picks the quality itself and lists the subtitle renditions as text tracks.
      video.src = v.playback_url + (state.startAt ? `#t=${state.startAt}` : "");
      setupPlyr(v, false);
      return start();
    }
    show("error", "This browser cannot play HLS video.");
  }

  function playWithHls(v, plyrLater = false) {
    // A growing video's playlists are EVENT playlists: hls.js plays them as live. Start at the beginning (the
    // live default is 3 target durations before the edge), and never seek or speed up towards the edge: these
    // are hls.js 1.7's defaults for the latter two, pinned here because playing from 0 depends on them.
    const hls = new Hls({
      startPosition: state.startAt ?? 0,
      liveSyncDurationCount: 3, // (hls.js refuses a max latency count without this one beside it)
      liveMaxLatencyDurationCount: Infinity, // no jump forward to the live sync point, however far behind
      maxLiveSyncPlaybackRate: 1, // no faster playback to catch up with the edge
      liveDurationInfinity: false, // a finite duration: the media's seekable end is the encoded edge
    });
    hls.subtitleDisplay = false; // the chosen track stays "hidden": Plyr draws its cues, not the browser
    state.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
      if (plyrLater && !state.plyr) {
        state.renditions = oneCodec(levelRenditions(data.levels));
        setupPlyr(v);
        hls.attachMedia(video);
      }
      state.levels = data.levels.length;
      state.labels = data.levels.map(levelLabel);
      start();
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
      state.playingLevel = data.level;
      showPlayingLevel();
    });
    hls.on(Hls.Events.FRAG_LOADED, (_event, data) => {
      if (data.frag.type === "main") state.loadedLevels.push(data.frag.level);
    });
    hls.on(Hls.Events.ERROR, onError);
    hls.loadSource(v.playback_url);
    if (!plyrLater) hls.attachMedia(video);
  }

  function onError(_event, data) {
    state.errors.push(data.details);
    if (!data.fatal) return;
    state.fatal = data.details;
    if (state.retries < MAX_RETRIES && data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR) {
      // The encode finished between the API's answer and this request: the master is the finished one now.
      state.retries += 1;
      setTimeout(() => state.hls.loadSource(state.video.playback_url), 1000 * state.retries);
    } else if (state.retries < MAX_RETRIES && data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      state.retries += 1;
      setTimeout(() => state.hls.startLoad(), 1000 * state.retries);
    } else if (state.retries < MAX_RETRIES && data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      state.retries += 1;
      state.hls.recoverMediaError();
    } else {
      show("error", "Playback stopped.", null, `${data.details}: reload the page to try again.`);
    }
  }

  function start() {
    // Browsers may refuse to start without a gesture: Plyr's big play button is there for that.
    video.play().catch(() => {});
  }

  // The rendition a level plays, from its playlist URL (".../720p/index.m3u8").
  function playlistName(level) {
    const match = /\/([A-Za-z0-9_.-]+)\/index\.m3u8(?:[?#]|$)/.exec(level.url || "");
    return match ? match[1] : null;
  }

  function levelRenditions(levels) {
    return levels
      .map((level) => ({
        name: playlistName(level),
        width: level.width,
        height: level.height,
        bandwidth: level.bitrate,
        codecs: [level.videoCodec, level.audioCodec].filter(Boolean).join(","),
      }))
      .filter((r) => r.name)
      .sort((a, b) => b.bandwidth - a.bandwidth);
  }

  // With an AV1 ladder beside the H.264 one (same sizes), the quality menu lists the rungs of the codec hls.js
  // plays: hls.js drops the variants this browser cannot decode (MediaSource.isTypeSupported on their CODECS)
  // and starts, and stays, in the most efficient codec left, AV1 before H.264. The audio-only rendition has no
  // video codec and always stays.
  const AV1 = "av01";
  function oneCodec(renditions) {
    const decodes = (r) => !r.codecs || !window.MediaSource || MediaSource.isTypeSupported(`video/mp4; codecs="${r.codecs}"`);
    const playable = renditions.filter(decodes);
    const isAv1 = (r) => (r.codecs || "").split(",").some((c) => c.trim().startsWith(AV1));
    const av1 = playable.filter(isAv1);
    return av1.length ? av1 : playable.filter((r) => !isAv1(r));
  }

  // What the menu calls a level: the rendition's name, or its size.
  function levelLabel(level) {
    const name = playlistName(level);
    if (name && state.renditions.some((r) => r.name === name)) return name;
    const side = level.width && level.height ? Math.min(level.width, level.height) : level.height;
    return side ? `${side}p` : `${Math.round(level.bitrate / 1000)} kb/s`;
  }

  // The quality menu lists the video's renditions (the API gives them best first, before hls.js has read the
  // master playlist): value i + 1 is renditions[i], value 0 is Auto. A choice becomes the hls.js level whose
  // playlist is that rendition's.
  function setupPlyr(v, withQuality = true) {
    const renditions = withQuality ? state.renditions : [];
    const qualityLabel = { [AUTO]: "Auto" };
    const qualityBadge = {};
    renditions.forEach((r, i) => {
      qualityLabel[i + 1] = r.name;
      const side = r.width && r.height ? Math.min(r.width, r.height) : 0;
      if (side >= 2160) qualityBadge[i + 1] = "4K";
      else if (side >= 720) qualityBadge[i + 1] = "HD";
    });
    video.textTracks.addEventListener("addtrack", onTrackAdded); // before Plyr's own listener: runs first
    const plyr = new Plyr(video, {
      iconUrl: "/static/vendor/plyr.svg", // never the CDN default
      blankVideo: "",
      storage: { enabled: false }, // a quality value means a rendition of this video only
      ratio: "16:9", // one box for every shape: portrait videos are pillarboxed
      seekTime: 5,
      invertTime: false,
      keyboard: { focused: true, global: true }, // Plyr ignores keys typed into inputs
      tooltips: { controls: true, seek: true },
      controls: ["play-large", "play", "progress", "current-time", "duration", "mute", "volume", "captions",
        "settings", "pip", "fullscreen"],
      settings: ["captions", "quality", "speed"],
      captions: { active: false, language: "auto", update: true }, // hls.js adds its tracks after Plyr starts
      quality: {
        default: AUTO,
        options: renditions.length > 1 ? [AUTO, ...renditions.map((_, i) => i + 1)] : [],
        forced: true,
        onChange: chooseQuality,
      },
      i18n: { qualityLabel, qualityBadge },
      previewThumbnails: { enabled: false, src: "" }, // addPreviews, once the track answers
      // While it encodes, the media's duration is the encoded part: the bar spans the whole video instead.
      duration: state.growing ? v.duration : null,
    });
    state.plyr = plyr;
    if (v.storyboard_url) addPreviews(plyr, v.storyboard_url);
    $("shortcuts").hidden = false;
    for (const event of ["languagechange", "captionsenabled", "captionsdisabled"]) plyr.on(event, syncCaptions);
  }

  // Plyr throws on a track that does not load (a store outage): its previews come on once the track answers.
  async function addPreviews(plyr, url) {
    if (state.previews) return;
    state.previews = true;
    try {
      const response = await fetch(url, { headers: { Accept: "text/vtt" } });
      if (response.ok) plyr.setPreviewThumbnails({ enabled: true, src: url });
    } catch {
      // no previews: the bar works without them
    }
  }

  function levelOfValue(value) {
    const r = state.renditions[value - 1];
    return r ? state.labels.indexOf(r.name) : -1;
  }

  function chooseQuality(value) {
    const hls = state.hls;
    if (!hls || !state.levels) return;
    if (value === AUTO) {
      if (!hls.autoLevelEnabled) hls.nextLevel = -1; // back to automatic, from the next fragment on
    } else {
      const level = levelOfValue(value);
      if (level >= 0) hls.currentLevel = level; // switch now: flush and load the chosen level
    }
    showPlayingLevel();
  }

  // "Playing 720p" under the player, and "Auto (720p)" in the quality menu while hls.js chooses.
  function showPlayingLevel() {
    const hls = state.hls;
    const plyr = state.plyr;
    if (!hls) return;
    const label = state.labels[state.playingLevel] || "";
    const auto = hls.autoLevelEnabled;
    $("current-level").textContent = label ? `Playing ${label}${auto ? " (auto)" : ""}` : "";
    const menu = plyr && plyr.elements.settings.panels.quality;
    if (!menu || plyr.options.quality.length < 2) return;
    const autoText = auto && label ? `Auto (${label})` : "Auto";
    plyr.config.i18n.qualityLabel[AUTO] = autoText;
    const item = menu.querySelector(`[value="${AUTO}"] span`);
    if (item) item.textContent = autoText;
    const chosen = state.labels[hls.manualLevel];
    const selected = auto ? AUTO : state.renditions.findIndex((r) => r.name === chosen) + 1;
    plyr.media.dispatchEvent(new CustomEvent("qualitychange", { detail: { quality: selected } }));
  }

  // hls.js names each text track after the master playlist's NAME, which the creator chose, and Plyr writes
  // track labels into its menus as HTML: escape the label before Plyr reads it. A DEFAULT=YES rendition is
  // switched on through Plyr, so its menu and hls.js agree on what is showing.
  const trackNames = new WeakMap(); // TextTrack -> the NAME hls.js gave it

  function onTrackAdded(event) {
    // Every track, not only this event's: hls.js appends several at once and Plyr lists them all each time.
    for (const element of video.querySelectorAll("track")) {
      if (trackNames.has(element.track)) continue;
      trackNames.set(element.track, element.label);
      element.label = escapeHtml(element.label);
    }
    const track = event.track;
    const source = hlsTrackFor(track);
    if (!source || !source.default) return;
    setTimeout(() => {
      const plyr = state.plyr;
      const tracks = [...video.textTracks].filter((t) => t.kind === "subtitles" || t.kind === "captions");
      if (plyr && !plyr.captions.toggled && tracks.includes(track)) plyr.currentTrack = tracks.indexOf(track);
    });
  }

  function hlsTrackFor(track) {
    const name = trackNames.get(track) ?? track.label;
    const tracks = state.hls ? state.hls.subtitleTracks : [];
    return tracks.find((t) => t.name === name && (t.lang || "") === (track.language || ""));
  }

  function escapeHtml(text) {
    const map = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
    return text.replace(/[&<>"']/g, (ch) => map[ch]);
  }

  // Plyr's caption menu chose a track (or none): hand the choice to hls.js, which loads that rendition.
  function syncCaptions() {
    const hls = state.hls;
    const plyr = state.plyr;
    if (!hls || !plyr) return;
    const track = plyr.captions.toggled ? plyr.captions.currentTrackNode : null;
    const index = track ? hls.subtitleTracks.indexOf(hlsTrackFor(track)) : -1;
    if (hls.subtitleTrack !== index) hls.subtitleTrack = index;
  }

  // ---- share -------------------------------------------------------------------------------------
  const share = { at: 0 };

  function shareLink() {
    const url = new URL(`/watch/${id}`, location.origin);
    if (state.token) url.searchParams.set("token", state.token); // a private video's link stays one
    if ($("share-start").checked && share.at > 0) url.searchParams.set("t", String(share.at));
    return url.href;
  }

  function refreshShare() {
    $("share-time").textContent = UI.clockDuration(share.at);
    $("share-url").value = shareLink();
    $("share-done").textContent = "";
    const v = state.video;
    $("share-note").hidden = !(v && v.visibility === "private" && !state.token);
  }

  $("share-button").addEventListener("click", () => {
    const panel = $("share-panel");
    panel.hidden = !panel.hidden;
    $("share-button").setAttribute("aria-expanded", String(!panel.hidden));
    if (panel.hidden) return;
    share.at = Math.floor(video.currentTime || 0);
    refreshShare();
  });
  $("share-start").addEventListener("change", refreshShare);
  $("share-copy").addEventListener("click", async () => {
    const input = $("share-url");
    const link = shareLink();
    input.value = link;
    let copied = false;
    try {
      await navigator.clipboard.writeText(link);
      copied = true;
    } catch {
      input.select(); // older browsers, or the clipboard permission refused
      copied = document.execCommand && document.execCommand("copy");
    }
    $("share-done").textContent = copied ? "Link copied." : "Select the link and copy it.";
  });

  // "?" opens the shortcut list (Plyr handles the player keys; neither reacts while typing in a field).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "?" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    const help = $("shortcuts");
    help.open = !help.open;
  });

  // ---- time --------------------------------------------------------------------------------------
  // ?t=83, 83s, 1m23s, 1h2m3s or 1:23 / 1:02:03, as share links from other sites write it.
  function parseStart(raw) {
    if (!raw) return null;
    let m = /^(\d{1,6})s?$/.exec(raw);
    if (m) return Number(m[1]);
    m = /^(?:(\d{1,3})h)?(?:(\d{1,4})m)?(?:(\d{1,6})s)?$/.exec(raw);
    if (m) return Number(m[1] || 0) * 3600 + Number(m[2] || 0) * 60 + Number(m[3] || 0);
    m = /^(?:(\d{1,3}):)?(\d{1,2}):(\d{2})$/.exec(raw);
    if (m) return Number(m[1] || 0) * 3600 + Number(m[2]) * 60 + Number(m[3]);
    return null;
  }

  poll();
})();

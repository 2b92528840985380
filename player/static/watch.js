// Watch page: poll the video until it is ready, then play it with hls.js (MSE) or native HLS.
(() => {
  const root = document.getElementById("player");
  const id = root.dataset.videoId;
  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  const statusText = document.getElementById("status-text");
  const bar = document.getElementById("status-progress");
  const quality = document.getElementById("quality");
  const current = document.getElementById("current-level");
  const state = { hls: null, errors: [], fatal: null, levels: 0 };
  window.streamify = state;

  function show(message, progress, isError) {
    overlay.hidden = false;
    overlay.classList.toggle("error", Boolean(isError));
    statusText.textContent = message;
    bar.hidden = progress === undefined;
    if (progress !== undefined) bar.value = progress;
  }

  async function poll() {
    let response;
    try {
      response = await fetch(`/api/v1/videos/${id}`);
    } catch (err) {
      show("Connection lost, retrying…");
      return setTimeout(poll, 2000);
    }
    if (response.status === 404) return show("This video does not exist or was deleted.", undefined, true);
    if (!response.ok) return setTimeout(poll, 2000);
    const v = await response.json();
    document.getElementById("title").textContent = v.title;
    document.title = `${v.title} · Streamify`;
    if (v.status === "ready") return play(v);
    if (v.status === "failed") return show(`Processing failed: ${v.error || "unknown error"}`, undefined, true);
    const pct = Math.round(v.progress * 100);
    show(v.status === "processing" ? `Processing… ${pct}%` : "Waiting for a transcoder…", v.progress);
    setTimeout(poll, 1000);
  }

  function levelLabel(level) {
    return level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kb/s`;
  }

  function play(v) {
    overlay.hidden = true;
    if (window.Hls && Hls.isSupported()) {
      const hls = new Hls({ capLevelToPlayerSize: false });
      state.hls = hls;
      hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
        state.levels = data.levels.length;
        data.levels.forEach((level, i) => quality.add(new Option(levelLabel(level), String(i))));
        quality.disabled = data.levels.length < 2;
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
        current.textContent = `Playing ${levelLabel(hls.levels[data.level])}`;
      });
      hls.on(Hls.Events.ERROR, (_e, data) => {
        state.errors.push(data.details);
        if (!data.fatal) return;
        state.fatal = data.details;
        if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
        else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        else show(`Playback error: ${data.details}`, undefined, true);
      });
      quality.addEventListener("change", () => { hls.currentLevel = Number(quality.value); });
      hls.loadSource(v.playback_url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = v.playback_url;
    } else {
      return show("This browser cannot play HLS video.", undefined, true);
    }
    video.play().catch(() => { /* autoplay may be refused; the controls still work */ });
  }

  poll();
})();

// Index page: the newest videos, linking to their watch pages.
(async () => {
  const list = document.getElementById("videos");
  const response = await fetch("/api/v1/videos?limit=50");
  const page = await response.json();
  document.getElementById("empty").hidden = page.items.length > 0;
  for (const v of page.items) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = v.watch_url;
    link.textContent = `${v.title} — ${v.status}`;
    item.append(link);
    list.append(item);
  }
})();

"""Web pages for viewers (watch page, index) and their static assets (hls.js comes from npm)."""

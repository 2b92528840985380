"""Web pages (index, watch, upload, library, sign-in, ops dashboard shell) and their static assets (hls.js, Plyr
and the other browser libraries from npm). Pages read the same JSON API a script would."""

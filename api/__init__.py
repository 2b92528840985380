"""The FastAPI service: the HTTP face of upload intake (ingest/) and of the pages (player/), video metadata,
captions, playlists and private playback, operator routes, metrics and health. Routes are thin; what an app
uses comes from the settings given to `api.app.create_app`."""

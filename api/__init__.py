"""The FastAPI service: video metadata, uploads, playlists, health."""

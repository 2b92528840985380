"""Shared plumbing every role imports: settings, database engine, blob stores, ffmpeg binary."""

"""Shared plumbing every role imports: settings, database, blob stores and key layout, the job queue and its
broker doorbell, media sniffing and probing, domain refusals, accounts and playback tokens. Nothing here
imports a role (ingest, workers, api, player, cli)."""

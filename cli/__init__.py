"""The `streamify` command: cli/ only wires commands to the roles (api/, workers/, ingest/, infra/) and runs
them as processes; what a role does lives in its own package, never here.
"""

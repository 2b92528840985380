"""The `streamify` command: cli/ only wires commands to the roles (api/, workers/, ingest/, infra/) and runs
them as processes; what a role does lives in its own package, never here. Its one piece of its own is the client
of the public API (client.py), which speaks HTTP to a server and imports nothing of the server's but its models.
"""

"""The `streamify` command."""

"""SQLModel tables (tables.py) and the API's request/response models (api.py)."""

"""The persisted job queue."""

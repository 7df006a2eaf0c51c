"""Backups (targets, runs, verify, restore, schedules) and import from a card or folder."""

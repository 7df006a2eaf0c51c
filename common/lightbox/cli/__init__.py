"""The ``lightbox`` command line. Never imports Textual (a test checks)."""

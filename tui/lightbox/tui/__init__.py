"""The lightbox terminal UI (Textual). Talks to the daemon only through the control socket."""

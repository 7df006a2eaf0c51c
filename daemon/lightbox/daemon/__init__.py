"""lightboxd: the daemon that keeps the catalog, watches sources and serves the control socket."""

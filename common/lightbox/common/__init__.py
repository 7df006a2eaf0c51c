"""What the daemon, the TUI and the CLI share: protocol, client, configuration, paths.

Nothing under ``lightbox.common`` may import Textual: scripts and the daemon load it, and
neither should pay for (or depend on) the terminal UI.
"""

from importlib import metadata

try:
    __version__ = metadata.version("lightbox")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

"""Photos in the terminal: choosing a graphics mode, encoding off the UI thread, caching.

``graphics`` decides how images are drawn (Kitty, Sixel, half-cells or not at all) before the
app starts, ``encode`` turns JPEG bytes into what a terminal draws, ``cache`` keeps both the
bytes and the encodings, ``service`` fetches and encodes nearest-first in the background, and
``view`` is the widget that puts an encoded image on the screen.
"""

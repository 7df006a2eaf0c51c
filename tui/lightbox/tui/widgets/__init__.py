"""Widgets of the screens. They take attributes down (``set_seq``, ``show``) and send
messages up (``PhotoCursor``, ``PhotoOpen``, ``FolderChosen``); none of them does I/O."""

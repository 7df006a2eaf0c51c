"""The local library: roots, scanning, watching, indexing."""

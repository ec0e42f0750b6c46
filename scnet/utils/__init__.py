"""Small helpers shared by the run path: atomic file writes, config instantiation, printing."""

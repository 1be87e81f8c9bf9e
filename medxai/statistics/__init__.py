"""Statistics on numbers alone (no models, no images): the bootstrap, classification metrics
with their intervals, McNemar. Training, the explanation metrics and the audit build on it."""

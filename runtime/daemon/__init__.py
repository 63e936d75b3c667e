"""The runtime daemon's parts; today the per-container shim."""

"""Simulated nodes (kwok-style): Nodes, Leases and pod status without containers."""

"""The schema of every kind skiff serves, one module per API group."""

"""Pod networking for sandboxes: network namespaces, addresses, the node bridge."""

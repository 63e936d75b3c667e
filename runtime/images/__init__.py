"""Container images on a node: a content-addressed store, unpacked layers, overlay rootfs."""

"""Video I/O, codec motion vectors, dataset loaders and synthetic worlds."""

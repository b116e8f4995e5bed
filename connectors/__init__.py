"""I/O for touchflow: Redis streams and checkpoints, JSON Lines files, metrics, embedded Redis."""

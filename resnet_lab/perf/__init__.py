"""Performance accounting: FLOPs and peaks (MFU), the C8 variants, the Q3b profiler, peak memory."""

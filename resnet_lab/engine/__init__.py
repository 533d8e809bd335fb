"""The training engine: clock, step, loop, metrics, worker post-mortem, interrupts, runs (in-process or isolated), CUDA
graph step, host allocator tuning."""

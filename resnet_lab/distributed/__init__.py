"""Data-parallel training of the lab (D1-D5): torch.distributed, DistributedDataParallel, torchrun.

`launch` sets up ranks and process groups (torchrun's env:// or torch.multiprocessing children),
`ddp` is the data-parallel run and the compute/communication measurement, `allreduce` the D4
microbenchmark, `scaling` the torch-free scaling model (`scaling_cli`: `resnet-lab scaling`), `bench` what
the D benchmarks do.
Nothing here imports torch at package import, so the results layer can use `scaling`.
"""

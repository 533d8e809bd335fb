"""`resnet-lab train` launched by torchrun: data-parallel on gloo, one JSON written by rank 0 for the whole job.

The README's command, sized down (a 20-image folder, two steps); real processes all the way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ddphelpers import TORCHRUN, torchrun

from resnet_lab.distributed.launch import threads_per_rank

pytestmark = [
    pytest.mark.usefixtures("private_cache"),
    pytest.mark.skipif(not TORCHRUN.exists(), reason=f"torchrun is not installed beside {sys.executable}"),
]


def test_torchrun_trains_data_parallel_and_rank_0_writes_the_job(tmp_path: Path, tiny_folder: Path) -> None:
    out = tmp_path / "out.json"
    proc = torchrun(
        "--data",
        str(tiny_folder),
        "--epochs",
        "2",
        "--max-batches",
        "2",
        "--batch-size",
        "4",
        "--num-workers",
        "0",
        "--eval-batches",
        "1",
        "--json",
        str(out),
        cwd=tmp_path,
    )
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert stdout.count("epoch 1/2") == 1 and stdout.count("wrote ") == 1, "only rank 0 prints"
    assert ", 2 ranks (gloo, " in stdout
    record = json.loads(out.read_text())
    config = record["config"]
    assert config["world_size"] == 2 and isinstance(config["world_size"], int)
    assert (config["batch_per_rank"], config["global_batch"], config["backend"], config["launcher"]) == (
        4,
        8,
        "gloo",
        "torchrun",
    )
    assert config["threads_per_rank"] == threads_per_rank(2)
    for epoch in record["epochs"]:
        assert epoch["batches"] == 2 and epoch["images"] == 2 * 2 * 4, "both ranks' images are counted"
        assert [r["images"] for r in epoch["ranks"]] == [8, 8]
        assert (epoch["world_size"], epoch["batch_per_rank"], epoch["global_batch"], epoch["threads_per_rank"]) == (
            2,
            4,
            8,
            threads_per_rank(2),
        )
        assert epoch["training_s"] == pytest.approx(epoch["copy_s"] + epoch["train_s"])
    assert record["test"]["test_images"] == 10, "each rank evaluated its half of the 10 test images"

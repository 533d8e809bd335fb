"""What benchmarks of one session share: C3's measurements and the C3.2 answer, and the runs that
answer other questions (C3's point at the C3.2 count is C4's, C5's, C6's sgd and C7's BN-on run).

One explicit step answers C3.2 for C4-C8 (`SweepState.c32`, the `c32` fixture): from C3's
training sweep when it measured whole epochs, else from a loader-only sweep run then. Serving
compares `RunConfig`s: a question whose configuration a benchmark of this session already
trained is answered by that run (`lab.served`) instead of training it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ..data import LabDataset
from ..engine.run import LabRun, RunConfig
from ..spec.presets import c32_answer
from .benchmarking import loader_only_sweep
from .options import LabOptions


@dataclass
class SweepState:
    """C3's measurements in this pytest run, the C3.2 answer derived from them once, and the
    training runs that other questions share instead of training the same configuration again."""

    training: dict[int, float] = field(default_factory=dict)  # workers -> mean load_s per epoch, with training
    training_full_epochs: bool = False
    training_device: str | None = None  # the device whose C3 sweep the answer uses
    loader: dict[int, float] = field(default_factory=dict)  # workers -> load_s of one loader-only epoch
    answer: dict[str, object] | None = None
    trained: dict[RunConfig, str] = field(default_factory=dict)  # configuration -> the benchmark that trained it
    served: list[dict[str, object]] = field(default_factory=list)  # questions answered by a run of another benchmark
    runs: dict[str, tuple[LabRun, dict]] = field(default_factory=dict)  # benchmark -> its trained run and extra_info
    evaluations: dict[str, dict[str, object]] = field(default_factory=dict)  # benchmark -> its deferred evaluation

    def record_trained(self, config: RunConfig, name: str, run: LabRun, extra_info: dict) -> None:
        """Keep a trained run (model and optimizer state included) so that questions with the same
        configuration can read it, and evaluate it, instead of training it again."""
        self.trained[config] = name
        self.runs[name] = (run, extra_info)

    def evaluation(self, name: str) -> dict[str, object]:
        """The test evaluation of benchmark `name`'s run, done once, on first need; also added to its extra_info."""
        if name not in self.evaluations:
            run, extra_info = self.runs[name]
            self.evaluations[name] = run.evaluate()
            extra_info.update(self.evaluations[name])
        return self.evaluations[name]

    def serving_run(self, config: RunConfig) -> str | None:
        """The benchmark of this session that already trained exactly `config`, if one did; one that
        also evaluates serves a question that needs no evaluation (eval_batches 0)."""
        for trained, name in self.trained.items():
            if trained == config or (not config.evaluates and replace(trained, eval_batches=0) == config):
                return name
        return None

    def serve_reason(self, config: RunConfig, group: str, name: str, params: dict[str, object]) -> str | None:
        """If a run of this session already trained `config`, record that it answers this question and say so."""
        by = self.serving_run(config)
        if by is None:
            return None
        self.serve(group, name, params, by, self.evaluation(by) if config.evaluates else None)
        return (
            f"served by {by}: the same configuration was already trained{' and evaluated' if config.evaluates else ''} "
            f"in this run, so {group} reads its figures (JSON: lab.served, "
            "extra_info.serves) instead of training it again"
        )

    def serve(
        self, group: str, name: str, params: dict[str, object], by: str, evaluation: dict[str, object] | None = None
    ) -> None:
        entry: dict[str, object] = {"group": group, "name": name, "params": dict(params), "by": by}
        if evaluation is not None:
            entry["evaluation"] = dict(evaluation)  # made for this question, after the serving benchmark was saved
        self.served.append(entry)

    def serves(self) -> dict[str, list[str]]:
        """benchmark name -> the questions it answered besides its own."""
        out: dict[str, list[str]] = {}
        for entry in self.served:
            groups = out.setdefault(str(entry["by"]), [])
            if entry["group"] not in groups:
                groups.append(str(entry["group"]))
        return out

    def c32(self, train_set: LabDataset, fallback_workers: Iterable[int]) -> dict[str, object]:
        """C3.2 from full-epoch training times if C3 ran them, else the loader-only sweep (run now if needed).

        Capped smoke epochs time mostly worker start-up, so their load_s is no
        basis for choosing a worker count; a full loader epoch is.
        """
        if self.answer is None:
            if self.training_full_epochs and len(self.training) >= 2:
                self.answer = c32_answer(self.training, source="C3 (training, full epochs)")
            else:
                if len(self.loader) < 2:
                    self.loader.update(loader_only_sweep(train_set, fallback_workers))
                self.answer = c32_answer(self.loader, source="C3-loader (full CPU loader epochs)")
        return self.answer


def lab_record(options: LabOptions, sweep: SweepState | None) -> dict[str, object]:
    """The JSON's top-level `lab` key: the workload, the numerics, the C3.2 answer, and which run answered which
    question."""
    record: dict[str, object] = {
        "preset": options.preset,
        "data": options.data,
        "epochs": options.epochs,
        "max_batches": options.max_batches,
        "eval_batches": options.eval_batches,
        "devices": list(options.devices),
        "numerics": {
            "cudnn_tf32": options.numerics.cudnn_tf32,
            "float32_matmul_precision": options.numerics.matmul_precision,
            "note": (
                "CUDA fp32 convolutions run as TF32 (PyTorch's default on Ampere and newer; the lab's GPUs had none)"
                if options.numerics.cudnn_tf32
                else "CUDA fp32 convolutions in full fp32, as on the lab's GPUs (--lab-tf32 off)"
            ),
        },
        "c3_2": sweep.answer if sweep else None,
        "served": list(sweep.served) if sweep else [],
    }
    if options.seeded:  # absent by default, so a run without --lab-seeds keeps the keys it always had
        record["seeds"] = list(options.seeds)
    return record

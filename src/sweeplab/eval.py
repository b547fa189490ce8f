"""sweeplab-eval: metrics of a saved model on a split of its data set (test by default).

    sweeplab-eval logs/train/runs/<run>                 # test split, the data the run trained on
    sweeplab-eval <run or .ckpt> split=val data.path=other_names.txt
Writes <run dir>/eval_<split>.json (when given a run dir) and prints the metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sweeplab.config.schema import rng


@dataclass
class EvalConf:
    split: str = rng("test", choices=("test", "val"))
    batch_size: int = rng(0, ge=0)  # 0: the run's own


def evaluate(target: str, opts: EvalConf, data_overrides: list[str]) -> dict:
    import pytorch_lightning as pl
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from sweeplab.config.validate import check_node, schema_for
    from sweeplab.runs.restore import build_network, find_checkpoint, load_checkpoint

    ckpt = load_checkpoint(find_checkpoint(target))
    meta = ckpt["sweeplab"]
    cfg, net = build_network(ckpt)
    data_cfg = OmegaConf.merge(cfg.data, OmegaConf.from_dotlist([d[len("data.") :] for d in data_overrides]))
    check_node(data_cfg, schema_for("data", meta["choices"].get("data"), data_cfg), "data")
    if opts.batch_size and "batch_size" in data_cfg:
        data_cfg.batch_size = opts.batch_size
    dm = instantiate(data_cfg)
    dm.load_state_dict(ckpt.get(type(dm).__qualname__, {}) or {k: meta[k] for k in ("vocab",) if k in meta})
    dm.prepare_data()
    dm.setup("test")
    task = instantiate(cfg.task, _partial_=True)(
        net=net, optimizer=None, scheduler=None, loss=OmegaConf.to_container(cfg.loss), meta=meta
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    run = trainer.test if opts.split == "test" else trainer.validate
    results = run(task, datamodule=dm, verbose=False)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


def main(argv: list[str] | None = None) -> None:
    from sweeplab.runs.restore import target_cli

    def body(target: str, opts: EvalConf, data_overrides: list[str]) -> None:
        from sweeplab.io import write_json

        metrics = evaluate(target, opts, data_overrides)
        if Path(target).is_dir():
            write_json(
                Path(target) / f"eval_{opts.split}.json",
                {"split": opts.split, "metrics": metrics, "data_overrides": data_overrides},
            )
        print(json.dumps(metrics, indent=2))

    target_cli("sweeplab-eval", __doc__, argv, EvalConf, body)


if __name__ == "__main__":
    main()

"""Typed schemas: one dataclass per config-group option, registered under (group, option).

Fields are the option's YAML keys; ``metadata`` holds ranges (gt, ge, lt, le) and allowed values (choices).
Pure Python on purpose: validation runs before torch is imported. tests/test_config.py checks that every
YAML has a schema whose fields equal its keys, and that model schemas match the constructors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

SCHEMAS: dict[tuple[str, str], type] = {}


def schema(group: str, *options: str):
    def register(cls):
        for option in options:
            SCHEMAS[(group, option)] = cls
        return cls

    return register


def rng(default: Any, **limits: Any):
    """A field with a default and range/choice limits, e.g. ``rng(0.1, ge=0, lt=1)``."""
    factory = (lambda d=default: list(d)) if isinstance(default, list) else None
    if factory:
        return field(default_factory=factory, metadata=limits)
    return field(default=default, metadata=limits)


# ---------------------------------------------------------------- top level
@dataclass
class DivergenceConf:
    factor: float = rng(3.0, gt=1)
    patience: int = rng(3, ge=1)


@dataclass
class TopLevel:
    task_name: str = "train"
    seed: int = rng(1337, ge=0)
    monitor: str = "val/loss"
    monitor_mode: str = rng("min", choices=("min", "max"))
    ckpt_path: Optional[str] = None
    overwrite: bool = False
    divergence: DivergenceConf = field(default_factory=DivergenceConf)
    test: bool = True
    num_threads: Optional[int] = rng(None, ge=1)


# ---------------------------------------------------------------- optimizer
@schema("optimizer", "adamw", "adam")
@dataclass
class AdamConf:
    lr: float = rng(1e-3, gt=0)
    weight_decay: float = rng(0.0, ge=0)
    betas: list[float] = rng([0.9, 0.999])


@schema("optimizer", "sgd")
@dataclass
class SGDConf:
    lr: float = rng(0.1, gt=0)
    momentum: float = rng(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = rng(0.0, ge=0)


# ---------------------------------------------------------------- scheduler
@dataclass
class _Warmup:
    warmup_steps: int = rng(0, ge=0)
    warmup_epochs: float = rng(0.0, ge=0)


schema("scheduler", "constant", "inverse_sqrt")(_Warmup)


@schema("scheduler", "step")
@dataclass
class StepConf(_Warmup):
    milestones: list[float] = rng([0.5, 0.75])
    gamma: float = rng(0.1, gt=0, le=1)


@schema("scheduler", "cosine", "linear")
@dataclass
class DecayConf(_Warmup):
    min_lr_ratio: float = rng(0.0, ge=0, le=1)


# ---------------------------------------------------------------- loss
@schema("loss", "cross_entropy", "label_smoothing")
@dataclass
class LossConf:
    label_smoothing: float = rng(0.0, ge=0, lt=1)
    smoothing_start_epoch: int = rng(0, ge=0)


# ---------------------------------------------------------------- trainer
# Trainer arguments beyond the YAML's may be added with +trainer.<name>=...: they must be real
# pytorch_lightning.Trainer arguments (tests/test_config.py checks this list against its signature).
TRAINER_EXTRA_ARGS = (
    "strategy",
    "num_nodes",
    "min_steps",
    "max_time",
    "limit_predict_batches",
    "enable_checkpointing",
    "enable_progress_bar",
    "gradient_clip_algorithm",
    "inference_mode",
    "use_distributed_sampler",
    "profiler",
    "detect_anomaly",
    "barebones",
    "plugins",
    "sync_batchnorm",
    "reload_dataloaders_every_n_epochs",
    "model_registry",
)


@schema("trainer", "default", "cpu", "gpu")
@dataclass
class TrainerConf:
    default_root_dir: Optional[str] = None
    accelerator: str = "auto"
    devices: Any = 1
    precision: Any = rng(
        "32-true",
        choices=("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", 32, 16, 64, "bf16"),
    )
    max_epochs: int = rng(10, ge=-1)
    max_steps: int = rng(-1, ge=-1)
    min_epochs: Optional[int] = rng(1, ge=0)
    gradient_clip_val: Optional[float] = rng(1.0, ge=0)
    accumulate_grad_batches: int = rng(1, ge=1)
    log_every_n_steps: int = rng(50, ge=1)
    val_check_interval: Any = rng(1.0, gt=0)
    check_val_every_n_epoch: Optional[int] = rng(1, ge=1)
    limit_train_batches: Any = rng(None, gt=0)
    limit_val_batches: Any = rng(None, ge=0)
    limit_test_batches: Any = rng(None, ge=0)
    num_sanity_val_steps: int = rng(0, ge=-1)
    fast_dev_run: Any = False
    overfit_batches: Any = rng(0.0, ge=0)
    deterministic: Any = False
    benchmark: Optional[bool] = None
    enable_model_summary: bool = False


# ---------------------------------------------------------------- paths
@schema("paths", "default")
@dataclass
class PathsConf:
    log_dir: str = "logs"
    output_dir: str = ""
    data_dir: str = ""


# ---------------------------------------------------------------- tasks
@schema("task", "names")
@dataclass
class LanguageModelTaskConf:
    num_samples: int = rng(20, ge=0)
    sample_temperature: float = rng(1.0, gt=0)
    sample_prefix: str = ""
    max_new_tokens: int = rng(32, ge=1)


schema("task", "codesearchnet")(LanguageModelTaskConf)


@schema("task", "lensing")
@dataclass
class ImageClassifierTaskConf:
    mixup_alpha: float = rng(0.0, ge=0)
    cutmix_alpha: float = rng(0.0, ge=0)


# ---------------------------------------------------------------- data
@schema("data", "names")
@dataclass
class NamesDataConf:
    path: Optional[str] = None
    split: list[float] = rng([0.8, 0.1, 0.1])
    split_seed: int = rng(42, ge=0)
    block_size: int = rng(3, ge=1)
    batch_size: int = rng(32, ge=1)
    num_workers: int = rng(0, ge=0)
    lowercase: bool = False


@schema("data", "lensing")
@dataclass
class LensingDataConf:
    path: Optional[str] = None
    classes: list[str] = rng(["no", "sphere", "vort"])
    test_fraction: float = rng(0.1, gt=0, lt=1)
    split_seed: int = rng(42, ge=0)
    image_size: int = rng(64, ge=8)
    train_per_class: int = rng(1500, ge=2)
    val_per_class: int = rng(300, ge=1)
    difficulty: Any = "high"  # high | medium | realistic | [lo, hi]: checked by the datamodule
    n_subhalos: list[int] = rng([2, 5], ge=1)
    vortex_points: int = rng(8, ge=2)
    noise: float = rng(0.0, ge=0)
    psf_fwhm: float = rng(0.0, ge=0)
    sim_seed: int = rng(0, ge=0)
    on_the_fly: bool = False
    cache_dir: str = ""
    augment: list[str] = rng([], choices=("rot90", "flip"))
    batch_size: int = rng(32, ge=1)
    num_workers: int = rng(0, ge=0)


@schema("data", "codesearchnet")
@dataclass
class CodeSearchNetDataConf:
    path: Any = None  # a directory, a glob, a file or a list of these
    hub: Optional[str] = None
    language: str = "python"
    data_dir: str = "~/.cache/sweeplab"
    cache_dir: Optional[str] = None
    vocab_size: int = rng(40_000, ge=4)
    max_seq_len: int = rng(256, ge=1)
    batch_tokens: int = rng(4096, ge=1)
    skip_bad_rows: bool = False
    block_size: int = rng(3, ge=1)
    adaptive_cutoffs: Optional[list[int]] = rng([2000, 10000], gt=0)
    num_workers: int = rng(0, ge=0)


# ---------------------------------------------------------------- models (language models)
@dataclass
class TokenLMConf:
    """Hyperparameters every neural language model shares (see models/base.py)."""

    embed_dim: int = rng(64, ge=1)
    hidden_dim: int = rng(128, ge=1)
    num_layers: int = rng(1, ge=1)
    dropout: float = rng(0.0, ge=0, lt=1)
    tie_weights: bool = False
    adaptive_cutoffs: Optional[list[int]] = None


@schema("model", "mlp")
@dataclass
class MLPConf(TokenLMConf):
    block_size: int = rng(3, ge=1)


@schema("model", "rnn", "lstm", "gru", "peephole_lstm")
@dataclass
class RecurrentConf(TokenLMConf):
    """Recurrent models: the shared hyperparameters only."""


@schema("model", "cnn")
@dataclass
class CNNConf(TokenLMConf):
    kernel_size: int = rng(2, ge=1)


@schema("model", "transformer")
@dataclass
class TransformerConf(TokenLMConf):
    num_heads: int = rng(4, ge=1)


@schema("model", "ngram")
@dataclass
class NGramConf:
    order: int = rng(2, ge=1, le=6)
    smoothing: float = rng(1.0, gt=0)


@schema("model", "kn_ngram")
@dataclass
class KNNGramConf:
    order: int = rng(3, ge=1, le=6)


# ---------------------------------------------------------------- models (image classifiers)
@schema("model", "densenet_cbam")
@dataclass
class DenseNetCBAMConf:
    width: int = rng(8, ge=1)
    depth: int = rng(3, ge=1)
    dropout: float = rng(0.2, ge=0, lt=1)
    blocks: int = rng(3, ge=1)
    reduction: float = rng(0.5, gt=0, le=1)
    attention_reduction: int = rng(8, ge=1)
    neck_dim: int = rng(128, ge=1)


@schema("model", "resnet")
@dataclass
class ResNetConf:
    width: int = rng(8, ge=1)
    depth: int = rng(2, ge=1)
    dropout: float = rng(0.2, ge=0, lt=1)
    stages: int = rng(4, ge=1)

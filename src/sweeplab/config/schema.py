"""Typed schemas of the config groups, with no values: Hydra structured configs in its ConfigStore.

Each dataclass is stored as ``schema/<group>/<name>``; an option's YAML lists it first and holds the only
values::

    defaults:
      - /schema/model/recurrent@_here_
      - _self_
    _target_: sweeplab.models.recurrent.Recurrent
    cell: lstm
    ...

The composed node keeps the dataclass as its type (``OmegaConf.get_type``), so OmegaConf refuses a wrong type
or an unknown key while composing, and validate.py finds the schema of every node from the node itself,
also of a user's own option that inherits a shipped one (``defaults: [lstm, _self_]``).

Fields are ``MISSING``: a type and, in ``metadata``, ranges (gt, ge, lt, le) and allowed values (choices).
Data sets declare the kind of batches they give (``produces``), models and tasks the kind they take
(``consumes``), so that an image model on text data is refused before anything runs.

Pure Python and Hydra's ConfigStore: validation runs before torch is imported. conf/__init__.py imports
this module, so the schemas are registered wherever sweeplab.conf is composed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

CONFIG_MODULE = "sweeplab.conf"
SCHEMA_GROUP = "schema"

# Kinds of batches (docs/ARCHITECTURE.md) and the data facts each kind's datamodule hands the model through
# ``dm.model_kwargs()``: a model's constructor takes these plus its schema's fields.
TOKENS, IMAGES = "tokens", "images"
DATA_FACTS: dict[str, tuple[str, ...]] = {
    TOKENS: ("vocab_size", "max_len"),
    IMAGES: ("in_channels", "num_classes", "image_size"),
}
# Arguments the task constructor gets from the run, not from its YAML.
TASK_RUN_ARGS = ("net", "optimizer", "scheduler", "loss", "meta")
# pytorch_lightning.Trainer arguments the run sets from other groups (callbacks, logger) rather than trainer/.
TRAINER_SET_BY_RUN = ("callbacks", "logger", "enable_checkpointing", "enable_progress_bar")


def spec(default: Any = MISSING, **limits: Any):
    """A field with its limits, e.g. ``spec(ge=0, lt=1)``; the value comes from the YAML. A config that has
    no YAML (a plain dataclass of options) may give its default here instead. A key added to an option after
    runs were trained with it names ``before=``: the value that does what the code did without the key, which
    restoring such a run's checkpoint uses (runs/restore.py)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=limits)
    return field(default=default, metadata=limits)


rng = spec  # the name eval.py and generate.py import


def schema(group: str, name: str):
    """Register the dataclass as ``schema/<group>/<name>`` (listed in the defaults of that group's YAMLs);
    a primary config's schema has no group (``schema/train``)."""

    def register(cls):
        ConfigStore.instance().store(group="/".join(filter(None, (SCHEMA_GROUP, group))), name=name, node=cls)
        return cls

    return register


# ---------------------------------------------------------------- bases
@dataclass
class Target:
    """Something Hydra instantiates: ``_target_`` names its class or function."""

    _target_: str = spec()


@dataclass
class Partial(Target):
    """A factory the task completes: the optimizer with the parameters, the scheduler with the run's length."""

    _partial_: bool = spec(choices=(True,))


# ---------------------------------------------------------------- top level (conf/train.yaml)
@dataclass
class DivergenceConf:
    factor: float = spec(gt=1)
    patience: int = spec(ge=1)


@dataclass
class InitialLossConf:
    tolerance: float = spec(gt=0)


@dataclass
class LRFindConf:
    """pytorch_lightning.tuner.Tuner.lr_find's range test (runs/diagnostics.py)."""

    min_lr: float = spec(gt=0)
    max_lr: float = spec(gt=0)
    num_training: int = spec(ge=2)
    mode: str = spec(choices=("exponential", "linear"))
    early_stop_threshold: Optional[float] = spec(gt=1)
    apply: bool = spec()


@dataclass
class CompileConf:
    """torch.compile of the network (runs/fit.py): off by default."""

    enabled: bool = spec()
    backend: str = spec()  # inductor, or any torch._dynamo backend (eager, aot_eager, ...)
    mode: str = spec(choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"))
    dynamic: Optional[bool] = spec()
    fullgraph: bool = spec()


@schema("", "train")
@dataclass
class TrainConf:
    task_name: str = spec()
    seed: int = spec(ge=0)
    monitor: str = spec()
    monitor_mode: str = spec(choices=("min", "max"))
    ckpt_path: Optional[str] = spec()
    overwrite: bool = spec()
    divergence: DivergenceConf = spec()
    initial_loss: InitialLossConf = spec()
    tune: Optional[str] = spec(choices=("lr_find", None))
    lr_find: LRFindConf = spec()
    test: bool = spec()
    num_threads: Any = spec()  # auto | a number >= 1: validate.threads_fit
    compile: CompileConf = spec()
    # Groups: the chosen option brings its own schema (``group``: the node must have one). callbacks and
    # logger hold named items, each with its own schema, any of them null.
    data: Any = spec(group=True)
    task: Any = spec(group=True)
    model: Any = spec(group=True)
    optimizer: Any = spec(group=True)
    scheduler: Any = spec(group=True)
    loss: Any = spec(group=True)
    regularizer: Any = spec(group=True)
    trainer: Any = spec(group=True)
    callbacks: Any = spec(items=True)
    logger: Any = spec(items=True)
    paths: Any = spec(group=True)


# ---------------------------------------------------------------- data
@schema("data", "names")
@dataclass
class NamesDataConf(Target):
    produces: ClassVar[str] = TOKENS
    path: Optional[str] = spec()
    split: list[float] = spec(ge=0, le=1)
    split_seed: int = spec(ge=0)
    block_size: int = spec(ge=1)
    batch_size: int = spec(ge=1)
    num_workers: int = spec(ge=0)
    lowercase: bool = spec()
    tbptt_steps: Optional[int] = spec(ge=1)


@schema("data", "codesearchnet")
@dataclass
class CodeSearchNetDataConf(Target):
    produces: ClassVar[str] = TOKENS
    path: Any = spec()  # a directory, a glob, a file or a list of these
    hub: Optional[str] = spec()
    language: str = spec()
    data_dir: str = spec()
    cache_dir: Optional[str] = spec()
    vocab_size: int = spec(ge=4)
    max_seq_len: int = spec(ge=1)
    batch_tokens: int = spec(ge=1)
    skip_bad_rows: bool = spec()
    block_size: int = spec(ge=1)
    adaptive_cutoffs: Optional[list[int]] = spec(gt=0)
    num_workers: int = spec(ge=0)
    tbptt_steps: Optional[int] = spec(ge=1)


@dataclass
class AugmentConf:
    """One image augmentation: the probability that it acts on an image (data/lensing.py)."""

    p: float = spec(ge=0, le=1)


@dataclass
class CropConf(AugmentConf):
    padding: int = spec(ge=0)  # pixels: the largest translation on each axis


@dataclass
class CutoutConf(AugmentConf):
    size: int = spec(ge=1)  # pixels: the side of the blanked square


@dataclass
class AugmentParamsConf:
    rot90: AugmentConf = spec()
    flip: AugmentConf = spec()
    crop: CropConf = spec()
    cutout: CutoutConf = spec()


IMAGE_AUGMENTATIONS = ("rot90", "flip", "crop", "cutout")  # the fields of AugmentParamsConf, in data/lensing.py


@schema("data", "lensing")
@dataclass
class LensingDataConf(Target):
    produces: ClassVar[str] = IMAGES
    path: Optional[str] = spec()
    classes: list[str] = spec()
    test_fraction: float = spec(gt=0, lt=1)
    split_seed: int = spec(ge=0)
    image_size: int = spec(ge=8)
    train_per_class: int = spec(ge=2)
    val_per_class: int = spec(ge=1)
    difficulty: Any = spec()  # high | medium | realistic | [lo, hi]: checked by the datamodule
    n_subhalos: list[int] = spec(ge=1)
    vortex_points: int = spec(ge=2)
    noise: float = spec(ge=0)
    psf_fwhm: float = spec(ge=0)
    sim_seed: int = spec(ge=0)
    on_the_fly: bool = spec()
    cache_dir: Optional[str] = spec()
    augment: list[str] = spec(choices=IMAGE_AUGMENTATIONS)
    augment_params: AugmentParamsConf = spec()
    batch_size: int = spec(ge=1)
    num_workers: int = spec(ge=0)


# ---------------------------------------------------------------- tasks
@schema("task", "language_model")
@dataclass
class LanguageModelTaskConf(Target):
    consumes: ClassVar[str] = TOKENS
    causal: ClassVar[bool] = True  # predicts each token from the ones before it: no bidirectional network
    num_samples: int = spec(ge=0)
    sample_temperature: float = spec(gt=0)
    sample_prefix: str = spec()
    max_new_tokens: int = spec(ge=1)
    temperatures: list[float] = spec(gt=0)
    plot_embeddings: bool = spec()
    tbptt_steps: Optional[int] = spec(ge=1)


@schema("task", "classifier")
@dataclass
class ClassifierTaskConf(Target):
    consumes: ClassVar[str] = IMAGES
    mixup_alpha: float = spec(ge=0)
    cutmix_alpha: float = spec(ge=0)
    test_time_augment: list[str] = spec(choices=("rot90", "flip"))  # tasks/classifier.py
    channels_last: bool = spec(before=False)


# ---------------------------------------------------------------- models (language models)
INITS = ("default", "kaiming", "xavier", "scaled")  # models/layers.py: init_weights
ACTIVATIONS = ("tanh", "relu", "gelu")
RECURRENT_CELLS = ("rnn", "lstm", "gru", "peephole_lstm", "jordan", "ctrnn")


@dataclass
class TokenLMConf(Target):
    """What every neural language model shares (models/base.py)."""

    consumes: ClassVar[str] = TOKENS
    embed_dim: int = spec(ge=1)
    hidden_dim: int = spec(ge=1)
    num_layers: int = spec(ge=1)
    dropout: float = spec(ge=0, lt=1)
    tie_weights: bool = spec()
    adaptive_cutoffs: Optional[list[int]] = spec(gt=0)
    init: str = spec(choices=INITS)


@schema("model", "mlp")
@dataclass
class MLPConf(TokenLMConf):
    block_size: int = spec(ge=1)
    activation: str = spec(choices=ACTIVATIONS)
    batch_norm: bool = spec()
    drop_connect: float = spec(ge=0, lt=1)


@schema("model", "recurrent")
@dataclass
class RecurrentConf(TokenLMConf):
    stateful: ClassVar[bool] = True  # truncated BPTT (data.tbptt_steps) carries its hidden state
    cell: str = spec(choices=RECURRENT_CELLS)
    activation: str = spec(choices=ACTIVATIONS)  # which cells take which: validate.recurrent_problem
    bidirectional: bool = spec()
    drop_connect: float = spec(ge=0, lt=1)
    time_constant: Optional[float] = spec(ge=1)  # the ctrnn cell's only


@schema("model", "cnn")
@dataclass
class CNNConf(TokenLMConf):
    kernel_size: int = spec(ge=1)


@schema("model", "transformer")
@dataclass
class TransformerConf(TokenLMConf):
    num_heads: int = spec(ge=1)
    activation: str = spec(choices=ACTIVATIONS)
    stochastic_depth: float = spec(ge=0, lt=1)
    drop_connect: float = spec(ge=0, lt=1)
    init: str = spec(choices=(*INITS, "gpt2"))


@schema("model", "ngram")
@dataclass
class NGramConf(Target):
    consumes: ClassVar[str] = TOKENS
    order: int = spec(ge=1, le=6)
    smoothing: float = spec(gt=0)


@schema("model", "kn_ngram")
@dataclass
class KNNGramConf(Target):
    consumes: ClassVar[str] = TOKENS
    order: int = spec(ge=1, le=6)


# ---------------------------------------------------------------- models (image classifiers)
@dataclass
class ImageNetConf(Target):
    """What every image classifier shares: ``width`` channels, ``depth`` layers per block/stage, dropout, the
    stem's stride and stochastic depth."""

    consumes: ClassVar[str] = IMAGES
    width: int = spec(ge=1)
    depth: int = spec(ge=1)
    dropout: float = spec(ge=0, lt=1)
    stem_stride: int = spec(choices=(1, 2))
    stochastic_depth: float = spec(ge=0, lt=1)  # the last layer's drop probability (linear decay before it)


@schema("model", "densenet_cbam")
@dataclass
class DenseNetCBAMConf(ImageNetConf):
    blocks: int = spec(ge=1)
    reduction: float = spec(gt=0, le=1)
    attention_reduction: int = spec(ge=1)
    neck_dim: int = spec(ge=1)
    downsample: str = spec(choices=("avgpool", "maxpool"), before="avgpool")  # models/densenet_cbam.py
    attention_init: str = spec(choices=("neutral", "kaiming"), before="kaiming")


@schema("model", "resnet")
@dataclass
class ResNetConf(ImageNetConf):
    stages: int = spec(ge=1)
    downsample: str = spec(choices=("stride", "maxpool"), before="stride")  # models/resnet.py


# ---------------------------------------------------------------- optimizer
@schema("optimizer", "adam")
@dataclass
class AdamConf(Partial):
    lr: float = spec(gt=0)
    weight_decay: float = spec(ge=0)
    betas: list[float] = spec(ge=0, lt=1)
    fused: Optional[bool] = spec()


@schema("optimizer", "sgd")
@dataclass
class SGDConf(Partial):
    lr: float = spec(gt=0)
    momentum: float = spec(ge=0, lt=1)
    nesterov: bool = spec()
    weight_decay: float = spec(ge=0)


# ---------------------------------------------------------------- scheduler
@schema("scheduler", "warmup")
@dataclass
class WarmupConf(Partial):
    """tasks/schedules.py: linear warmup of warmup_steps + warmup_epochs, then the schedule's own shape."""

    warmup_steps: int = spec(ge=0)
    warmup_epochs: float = spec(ge=0)


@schema("scheduler", "step")
@dataclass
class StepConf(WarmupConf):
    milestones: list[float] = spec(gt=0, lt=1)  # fractions of the run
    gamma: float = spec(gt=0, le=1)


@schema("scheduler", "decay")
@dataclass
class DecayConf(WarmupConf):
    min_lr_ratio: float = spec(ge=0, le=1)


@schema("scheduler", "onecycle")
@dataclass
class OneCycleConf(Partial):
    """torch.optim.lr_scheduler.OneCycleLR; the task fills in total_steps."""

    max_lr: float = spec(gt=0)
    pct_start: float = spec(gt=0, lt=1)
    anneal_strategy: str = spec(choices=("cos", "linear"))
    div_factor: float = spec(gt=0)
    final_div_factor: float = spec(gt=0)


# ---------------------------------------------------------------- regularizer
@schema("regularizer", "penalty")
@dataclass
class PenaltyConf(Target):
    """tasks/regularizers.py: l1 · Σ|w| + (l2 / 2) · Σ w² over the weight matrices."""

    l1: float = spec(ge=0)
    l2: float = spec(ge=0)


# ---------------------------------------------------------------- loss
@schema("loss", "loss")
@dataclass
class LossConf:
    label_smoothing: float = spec(ge=0, lt=1)
    smoothing_start_epoch: int = spec(ge=0)


# ---------------------------------------------------------------- trainer
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", 32, 16, 64, "bf16")


@schema("trainer", "trainer")
@dataclass
class TrainerConf(Target):
    """Every pytorch_lightning.Trainer argument but TRAINER_SET_BY_RUN (tests/test_config.py checks both)."""

    default_root_dir: Optional[str] = spec()
    accelerator: str = spec()
    strategy: str = spec()
    devices: Any = spec()  # an int, a list of ids, "auto"
    num_nodes: int = spec(ge=1)
    precision: Any = spec(choices=PRECISIONS)
    max_epochs: int = spec(ge=-1)
    min_epochs: Optional[int] = spec(ge=0)
    max_steps: int = spec(ge=-1)
    min_steps: Optional[int] = spec(ge=0)
    max_time: Any = spec()  # "DD:HH:MM:SS" or {days: .., hours: ..}
    gradient_clip_val: Optional[float] = spec(ge=0)
    gradient_clip_algorithm: Optional[str] = spec(choices=("norm", "value", None))
    accumulate_grad_batches: int = spec(ge=1)
    log_every_n_steps: int = spec(ge=1)
    val_check_interval: Any = spec(gt=0)
    check_val_every_n_epoch: Optional[int] = spec(ge=1)
    limit_train_batches: Any = spec(gt=0)
    limit_val_batches: Any = spec(ge=0)
    limit_test_batches: Any = spec(ge=0)
    limit_predict_batches: Any = spec(ge=0)
    num_sanity_val_steps: int = spec(ge=-1)
    fast_dev_run: Any = spec()  # false, true or a number of batches
    overfit_batches: Any = spec(ge=0)
    deterministic: Any = spec(choices=(True, False, "warn", None))
    benchmark: Optional[bool] = spec()
    inference_mode: bool = spec()
    use_distributed_sampler: bool = spec()
    sync_batchnorm: bool = spec()
    reload_dataloaders_every_n_epochs: int = spec(ge=0)
    profiler: Optional[str] = spec(choices=("simple", "advanced", "pytorch", "xla", None))
    detect_anomaly: bool = spec()
    barebones: bool = spec()
    plugins: Any = spec()
    enable_model_summary: bool = spec()
    enable_autolog_hparams: bool = spec()
    model_registry: Optional[str] = spec()


# ---------------------------------------------------------------- paths
@schema("paths", "paths")
@dataclass
class PathsConf:
    log_dir: str = spec()
    output_dir: str = spec()
    data_dir: str = spec()


# ---------------------------------------------------------------- callbacks (items of conf/callbacks)
@schema("callbacks", "model_checkpoint")
@dataclass
class ModelCheckpointConf(Target):
    dirpath: Optional[str] = spec()
    filename: Optional[str] = spec()
    auto_insert_metric_name: bool = spec()
    monitor: Optional[str] = spec()
    mode: str = spec(choices=("min", "max"))
    save_top_k: int = spec(ge=-1)
    save_last: Optional[bool] = spec()


@schema("callbacks", "early_stopping")
@dataclass
class EarlyStoppingConf(Target):
    monitor: str = spec()
    mode: str = spec(choices=("min", "max"))
    patience: int = spec(ge=0)
    min_delta: float = spec(ge=0)
    check_finite: bool = spec()


@schema("callbacks", "lr_monitor")
@dataclass
class LearningRateMonitorConf(Target):
    logging_interval: Optional[str] = spec(choices=("step", "epoch", None))


@schema("callbacks", "progress_bar")
@dataclass
class ProgressBarConf(Target):
    style: str = spec(choices=("auto", "rich", "tqdm", "none"))


@schema("callbacks", "diagnostics")
@dataclass
class DiagnosticsConf(Target):
    every_n_steps: int = spec(ge=1)
    saturation: float = spec(gt=0, lt=0.5)
    dirpath: str = spec()


# ---------------------------------------------------------------- loggers (items of conf/logger)
@schema("logger", "csv")
@dataclass
class CSVLoggerConf(Target):
    save_dir: str = spec()
    name: Optional[str] = spec()
    version: Any = spec()  # a number, a name, or "" for none


@schema("logger", "tensorboard")
@dataclass
class TensorBoardLoggerConf(CSVLoggerConf):
    default_hp_metric: bool = spec()


@schema("logger", "mlflow")
@dataclass
class MLFlowLoggerConf(Target):
    experiment_name: str = spec()
    run_name: Optional[str] = spec()
    tracking_uri: str = spec()
    artifact_location: Optional[str] = spec()
    log_model: bool = spec()


@schema("logger", "wandb")
@dataclass
class WandbLoggerConf(Target):
    project: str = spec()
    name: Optional[str] = spec()
    save_dir: str = spec()
    offline: bool = spec()
    log_model: bool = spec()


# ---------------------------------------------------------------- code search (docstring -> function retrieval)
# A third kind of batch: (query ids [B, Tq], code ids [B, Tc]) pairs, padded with id 0; the evaluation batches
# add the number of leading rows that are not scored (docs/ARCHITECTURE.md).
PAIRS = "pairs"
DATA_FACTS[PAIRS] = ("vocab_size", "max_len")
BM25_METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")


@schema("data", "code_search")
@dataclass
class CodeSearchDataConf(Target):
    produces: ClassVar[str] = PAIRS
    path: Any = spec()  # as data=codesearchnet: a directory, a glob, a file or a list of these
    hub: Optional[str] = spec()
    language: str = spec()
    data_dir: str = spec()
    cache_dir: Optional[str] = spec()
    skip_bad_rows: bool = spec()
    vocab_size: int = spec(ge=4)
    subtokens: bool = spec()
    min_query_tokens: int = spec(ge=1)
    max_query_len: int = spec(ge=1)
    max_code_len: int = spec(ge=1)
    batch_size: int = spec(ge=2)  # in-batch negatives: at least one
    eval_batch_size: int = spec(ge=2)
    eval_order_seed: int = spec(ge=0)
    num_workers: int = spec(ge=0)


@schema("task", "code_search")
@dataclass
class CodeSearchTaskConf(Target):
    consumes: ClassVar[str] = PAIRS
    recall_at: list[int] = spec(ge=1)
    num_examples: int = spec(ge=0)


@dataclass
class PairEncoderConf(Target):
    """What every neural query/code encoder shares (models/dual_encoder.py)."""

    consumes: ClassVar[str] = PAIRS
    embed_dim: int = spec(ge=1)
    dropout: float = spec(ge=0, lt=1)
    pooling: str = spec(choices=("mean", "attention"))
    shared: bool = spec()
    temperature: float = spec(gt=0)


@schema("model", "nbow")
@dataclass
class NBoWConf(PairEncoderConf):
    pass


@schema("model", "cnn_encoder")
@dataclass
class CNNEncoderConf(PairEncoderConf):
    hidden_dim: int = spec(ge=1)
    num_layers: int = spec(ge=1)
    kernel_size: int = spec(ge=1)


@schema("model", "birnn")
@dataclass
class BiRNNConf(PairEncoderConf):
    cell: str = spec(choices=("rnn", "gru", "lstm"))
    hidden_dim: int = spec(ge=1)
    num_layers: int = spec(ge=1)


@schema("model", "self_attention")
@dataclass
class SelfAttentionConf(PairEncoderConf):
    hidden_dim: int = spec(ge=1)
    num_layers: int = spec(ge=1)
    num_heads: int = spec(ge=1)


@schema("model", "bm25")
@dataclass
class BM25Conf(Target):
    consumes: ClassVar[str] = PAIRS
    k1: float = spec(ge=0)
    b: float = spec(ge=0, le=1)
    method: str = spec(choices=BM25_METHODS)

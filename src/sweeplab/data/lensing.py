"""Strong-lensing substructure images: the DeepLense layout, real or simulated.

Layout: ``<root>/train/<class>/*.npy`` and ``<root>/val/<class>/*.npy``, each file an image (C, S, S) (or
(S, S)) of floats. As in the original script, ``train/`` is split 90/10 into train and test (stratified by class, by
``split_seed``) and ``val/`` is the validation set. With no ``path`` the layout is simulated with caustics
(``data/lensing_sim.py``) into the cache dir once, or rendered batch by batch with ``on_the_fly``.

Every file is checked when the data set is set up, from its .npy header alone (shape, dtype, length), so
a bad file fails at once with a one-line ``DataError`` naming it rather than mid-epoch.

Training images can be augmented (``augment``: names applied in order, each with its probability and strength
in ``augment_params``). Which ones keep a lensing label true:

- ``rot90``, ``flip``: exact symmetries. The sky has no preferred direction or handedness, the simulator draws
  every angle uniformly, and a square pixel grid maps onto itself: the augmented images are images of the
  same distribution with the same label.
- ``crop`` (zero-padding and a random window: a translation by up to ``padding`` pixels): the label stays true
  while the arcs stay in the field (the Einstein ring is ≤ 1.4″ from the centre of the 5″ field, a margin of
  ~14 px at 64 px), but the lenses are always centred in these data, so it teaches an invariance the test
  images never ask for.
- ``cutout`` (a blanked square): can erase the stretch of arc a subhalo dents, turning a ``sphere`` or
  ``vort`` image into one that looks like ``no``: label noise, not a symmetry.
- mixup and cutmix (the classifier task, ``task.mixup_alpha``/``cutmix_alpha``): a blend of two lenses is not
  a lens, and a pasted box may or may not hold the substructure; their soft labels are a convention.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from sweeplab.data import lensing_sim as ls
from sweeplab.errors import ConfigError, DataError, first_line

log = logging.getLogger("sweeplab")


# ------------------------------------------------------------------ file checks
def npy_header(path: Path) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of a .npy file, checking that the data the header promises is all there."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _fortran, dtype = read(f)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file (corrupt?): {first_line(e)}") from None
    if dtype.hasobject:
        raise DataError(f"{path}: holds Python objects (dtype {dtype}); expected a float image")
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size < need:
        raise DataError(f"{path}: truncated (corrupt): {size} bytes, its header needs {need}")
    return tuple(shape), dtype


def image_shape(path: Path, shape: tuple, dtype: np.dtype) -> tuple[int, int, int]:
    """Validate one file's header against the image contract; returns (C, H, W)."""
    if dtype.kind != "f":
        raise DataError(f"{path}: dtype {dtype} is not a float image (expected float32, min-max scaled)")
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] < 1 or shape[1] < 4:
        raise DataError(f"{path}: shape {shape} is not an image (1, S, S) (or (S, S), or (C, S, S) with C channels)")
    return shape


def scan_split(root: Path, split: str, classes: Sequence[str]) -> tuple[list[Path], list[int]]:
    """Files and labels of ``root/split``; errors for a missing or empty class, or unknown class folders."""
    base = root / split
    if not base.is_dir():
        raise DataError(f"missing folder {base}: expected {root}/{{train,val}}/{{{','.join(classes)}}}/*.npy")
    present = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [c for c in present if c not in classes]
    if unknown:
        raise DataError(
            f"unknown class folder(s) in {base}: {', '.join(unknown)}; expected {', '.join(classes)} "
            f"(set data.classes to use other names)"
        )
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = base / name
        if not folder.is_dir():
            raise DataError(f"missing class folder {folder} (classes: {', '.join(classes)})")
        found = sorted(folder.glob("*.npy"))
        if not found:
            raise DataError(f"empty class folder {folder}: no .npy files")
        files += found
        labels += [label] * len(found)
    return files, labels


def check_files(files: Sequence[Path], expect: tuple | None = None) -> tuple[int, int, int]:
    """Every file's header: the same image shape throughout (the first file sets it unless ``expect``)."""
    first = None
    for path in files:
        shape = image_shape(path, *npy_header(path))
        if expect is None:
            expect, first = shape, path
        elif shape != expect:
            like = f"the first file {first}" if first else "the training images"
            raise DataError(f"{path}: shape {shape} differs from {expect} of {like}")
    return expect


def load_image(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot be loaded (corrupt?): {first_line(e)}") from None
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: contains NaN or infinite values")
    return arr.reshape(1, *arr.shape) if arr.ndim == 2 else arr


# ------------------------------------------------------------------ augmentation (of one image [C, S, S])
def _happens(p: float) -> bool:
    return p >= 1 or (p > 0 and bool(torch.rand(()) < p))


def rot90(x: torch.Tensor, *, p: float) -> torch.Tensor:
    """With probability p, a random orientation k·90° (k uniform in 0..3; p=1: all four equally likely)."""
    return torch.rot90(x, int(torch.randint(4, ())), dims=(-2, -1)) if _happens(p) else x


def flip(x: torch.Tensor, *, p: float) -> torch.Tensor:
    """With probability p, the mirror image (with rot90: all eight symmetries of the square)."""
    return torch.flip(x, dims=(-1,)) if _happens(p) else x


def crop(x: torch.Tensor, *, p: float, padding: int) -> torch.Tensor:
    """With probability p, pad by ``padding`` with the image's minimum (the sky of a min-max scaled image) and
    cut a random window of the original size: a translation by up to ±padding pixels on each axis."""
    if not padding or not _happens(p):
        return x
    h, w = x.shape[-2:]
    dy, dx = torch.randint(2 * padding + 1, (2,)).tolist()
    return F.pad(x, (padding,) * 4, value=float(x.min()))[..., dy : dy + h, dx : dx + w]


def cutout(x: torch.Tensor, *, p: float, size: int) -> torch.Tensor:
    """With probability p, a size×size square set to the image's minimum; its centre is uniform over the image,
    so it may hang over the edge (DeVries & Taylor 2017)."""
    if not _happens(p):
        return x
    h, w = x.shape[-2:]
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    top, left = cy - size // 2, cx - size // 2
    x = x.clone()
    x[..., max(top, 0) : max(top + size, 0), max(left, 0) : max(left + size, 0)] = x.min()
    return x


AUGMENTATIONS = {"rot90": rot90, "flip": flip, "crop": crop, "cutout": cutout}


class Augment:
    """The training images' random transforms, in the order listed, each with its own ``params``."""

    def __init__(self, names: Sequence[str], params: Mapping[str, Mapping]):
        unknown = [n for n in names if n not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"data.augment: unknown {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
        missing = [n for n in names if n not in params]
        if missing:
            raise ConfigError(f"data.augment_params has no settings for {', '.join(missing)}")
        self.names = tuple(names)
        self.params = {n: dict(params[n]) for n in names}
        self.steps = [(AUGMENTATIONS[n], self.params[n]) for n in names]

    def check_size(self, image_size: int) -> None:
        """The strengths fit the images (known once the data set is read)."""
        for name, key in (("crop", "padding"), ("cutout", "size")):
            value = self.params.get(name, {}).get(key, 0)
            if value >= image_size:
                raise ConfigError(
                    f"data.augment_params.{name}.{key}={value} is out of range for {image_size}-pixel images: "
                    f"it must be < {image_size}"
                )

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for fn, kwargs in self.steps:
            x = fn(x, **kwargs)
        return x


NO_AUGMENT = Augment((), {})


# ------------------------------------------------------------------ data sets
class NpyImages(Dataset):
    """Images read from their files on demand (a DeepLense-size set does not fit in memory comfortably)."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], augment: Augment = NO_AUGMENT):
        self.files, self.labels, self.augment = list(files), list(labels), augment

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        x = torch.from_numpy(load_image(self.files[i]).astype(np.float32, copy=False))
        return self.augment(x), self.labels[i]


class SimulatedImages(Dataset):
    """Simulated on the fly: a whole batch is rendered in one vmapped caustics call (``__getitems__``)."""

    def __init__(self, cfg: ls.SimConfig, items: Sequence[tuple[int, int]], augment: Augment = NO_AUGMENT):
        self.cfg, self.items, self.augment = cfg, list(items), augment
        self.labels = [c for c, _ in self.items]
        self._sim = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def sim(self) -> ls.LensSimulator:
        if self._sim is None:  # built lazily: in the DataLoader worker when there are workers
            self._sim = ls.LensSimulator(self.cfg)
        return self._sim

    def __getitems__(self, rows: Sequence[int]):
        params = [ls.draw_params(self.cfg, *self.items[r]) for r in rows]
        x = torch.from_numpy(self.sim.render(params))
        return [(self.augment(img), self.items[r][0]) for img, r in zip(x, rows)]

    def __getitem__(self, r: int):
        return self.__getitems__([r])[0]

    def __getstate__(self):  # caustics modules do not pickle; workers rebuild the simulator
        return {**self.__dict__, "_sim": None}


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(keep, held-out) row indices: ``fraction`` of every class held out, by a seeded permutation."""
    labels = np.asarray(labels)
    gen = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 2:
            raise DataError(f"class {int(c)} has {len(rows)} training image(s): need 2 or more to split off a test set")
        rows = rows[torch.randperm(len(rows), generator=gen).numpy()]
        n = min(max(int(round(fraction * len(rows))), 1), len(rows) - 1)
        held += rows[:n].tolist()
        keep += rows[n:].tolist()
    return sorted(keep), sorted(held)


def interleave(rows: Sequence[int], labels: Sequence[int]) -> list[int]:
    """Rows reordered class by class in turn (a, b, c, a, b, c, ...): evaluation loaders are not shuffled, and
    this way any first batches (fast_dev_run, limit_val_batches) still hold every class."""
    by_class: dict[int, list[int]] = {}
    for r in rows:
        by_class.setdefault(labels[r], []).append(r)
    queues = [by_class[c] for c in sorted(by_class)]
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


# ------------------------------------------------------------------ the datamodule
class LensingDataModule(pl.LightningDataModule):
    def __init__(
        self,
        *,
        path: str | None,
        classes: Sequence[str],
        test_fraction: float,
        split_seed: int,
        image_size: int,
        train_per_class: int,
        val_per_class: int,
        difficulty: Any,
        n_subhalos: Sequence[int],
        vortex_points: int,
        noise: float,
        psf_fwhm: float,
        sim_seed: int,
        on_the_fly: bool,
        cache_dir: str | None,
        augment: Sequence[str],
        augment_params: Mapping[str, Mapping],
        batch_size: int,
        num_workers: int,
    ):
        super().__init__()
        self.path = Path(path).expanduser() if path else None
        self.class_names = list(classes)
        if len(set(self.class_names)) != len(self.class_names) or len(self.class_names) < 2:
            raise DataError(f"data.classes={self.class_names}: need two or more distinct class names")
        self.augment = Augment(list(augment), {k: dict(v) for k, v in augment_params.items()})
        self.test_fraction, self.split_seed = float(test_fraction), int(split_seed)
        self.train_per_class, self.val_per_class = int(train_per_class), int(val_per_class)
        self.on_the_fly = bool(on_the_fly)
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.cache_dir = Path(cache_dir or Path.home() / ".cache" / "sweeplab").expanduser()
        self.sim_cfg = None
        if self.path is None:
            if tuple(self.class_names) != ls.CLASS_NAMES:
                raise DataError(
                    f"data.classes={self.class_names}: the simulator makes "
                    f"{', '.join(ls.CLASS_NAMES)}; other classes need data.path"
                )
            self.sim_cfg = ls.SimConfig(
                image_size=int(image_size),
                fsub=ls.fsub_range(difficulty),
                n_subhalos=tuple(n_subhalos),
                vortex_points=int(vortex_points),
                noise=float(noise),
                psf_fwhm=float(psf_fwhm),
                seed=int(sim_seed),
            )
        self.splits: dict[str, Dataset] = {}
        self.shape: tuple | None = None
        self.root: Path | None = None
        self.generation: ls.GenerationReport | None = None

    # -------------------------------------------------------------- building
    def prepare_data(self) -> None:
        if self.sim_cfg is not None and not self.on_the_fly:
            self.generation = ls.generate_dataset(
                self.cache_dir, self.sim_cfg, self.train_per_class, self.val_per_class, log=log.info
            )
            if self.generation.generated:
                log.info(
                    "simulated %d images in %.1fs (%.0f/s) into %s",
                    self.generation.images,
                    self.generation.seconds,
                    self.generation.images_per_s,
                    self.generation.root,
                )

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if self.sim_cfg is not None and self.on_the_fly:
            self._setup_on_the_fly()
            return
        if self.sim_cfg is not None:
            if self.generation is None:
                self.prepare_data()
            self.root = self.generation.root
        else:
            self.root = self.path
            if not self.root.is_dir():
                raise DataError(f"data.path={self.root}: no such folder (expected train/ and val/ inside)")
        files, labels = scan_split(self.root, "train", self.class_names)
        val_files, val_labels = scan_split(self.root, "val", self.class_names)
        self.shape = check_files(files)
        check_files(val_files, self.shape)
        self.augment.check_size(self.shape[-1])
        keep, held = stratified_split(labels, self.test_fraction, self.split_seed)
        held, val = interleave(held, labels), interleave(range(len(val_files)), val_labels)
        self.splits = {
            "train": NpyImages([files[i] for i in keep], [labels[i] for i in keep], self.augment),
            "test": NpyImages([files[i] for i in held], [labels[i] for i in held]),
            "val": NpyImages([val_files[i] for i in val], [val_labels[i] for i in val]),
        }

    def _setup_on_the_fly(self) -> None:
        classes = range(len(self.class_names))
        items = [(c, i) for c in classes for i in ls.split_indices("train", self.train_per_class)]
        labels = [c for c, _ in items]
        keep, held = stratified_split(labels, self.test_fraction, self.split_seed)
        val = [(c, i) for c in classes for i in ls.split_indices("val", self.val_per_class)]
        val = [val[r] for r in interleave(range(len(val)), [c for c, _ in val])]
        self.splits = {
            "train": SimulatedImages(self.sim_cfg, [items[i] for i in keep], self.augment),
            "test": SimulatedImages(self.sim_cfg, [items[i] for i in interleave(held, labels)]),
            "val": SimulatedImages(self.sim_cfg, val),
        }
        self.shape = (1, self.sim_cfg.image_size, self.sim_cfg.image_size)
        self.augment.check_size(self.shape[-1])

    # -------------------------------------------------------------- contract (docs/ARCHITECTURE.md)
    def model_kwargs(self) -> dict:
        c, s, _ = self.shape
        return {"in_channels": int(c), "num_classes": len(self.class_names), "image_size": int(s)}

    def data_files(self) -> list[Path]:
        """The folder a run reads, for its identity; simulated images are a function of the config alone."""
        return [self.path] if self.path else []

    def stats(self) -> dict:
        source = str(self.path) if self.path else ("simulated on the fly" if self.on_the_fly else "simulated")
        facts = {
            "source": source,
            "data_dir": str(self.root) if self.root else None,
            "image_size": self.shape[-1],
            "classes": ",".join(self.class_names),
            "augment": ",".join(self.augment.names) or "none",
        }
        for split, ds in self.splits.items():
            facts[f"{split}_items"] = len(ds)
        counts = np.bincount(self.splits["train"].labels, minlength=len(self.class_names))
        facts["train_per_class"] = ",".join(map(str, counts.tolist()))
        if self.sim_cfg is not None:
            facts["fsub"] = f"{self.sim_cfg.fsub[0]:g}-{self.sim_cfg.fsub[1]:g}"
            if self.root is not None:
                facts["data_mb"] = round(data_bytes(self.root) / 1e6, 1)
            if self.generation is not None and self.generation.generated:
                facts["sim_images_per_s"] = round(self.generation.images_per_s, 1)
                facts["sim_seconds"] = round(self.generation.seconds, 1)
        return facts

    def state_dict(self) -> dict:
        # Checkpoints carry the class order, so predictions can be named without the data.
        return {"class_names": list(self.class_names)}

    def load_state_dict(self, state: dict) -> None:
        if "class_names" in state and list(state["class_names"]) != self.class_names:
            raise DataError(
                f"the checkpoint's classes {state['class_names']} differ from data.classes {self.class_names}"
            )

    # -------------------------------------------------------------- loaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        batch = self.batch_size if split == "train" else self.batch_size * 2  # no gradients: bigger batches
        return DataLoader(
            self.splits[split],
            batch_size=batch,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)


def data_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*.npy"))

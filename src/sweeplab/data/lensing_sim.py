"""Simulated strong-lensing images for the substructure study, with caustics.

Every image is a main lens (SIE + external shear, centred) lensing a Sérsic source. The classes differ only
in the substructure added to the lens plane:

- ``no``: none;
- ``sphere``: a few point-mass subhalos scattered around the Einstein ring;
- ``vort``: a vortex-like line of mass, a string of equal point masses along a short segment.

Both substructure classes draw their mass fraction f_sub = Σ (r_i / R)² (point-mass Einstein radii over the
main lens's) from the same range, so total mass gives nothing away: only its arrangement does. The main lens
and source are drawn from the same distributions in every class.

An image is a pure function of (config, class, index): its parameters come from a NumPy generator seeded by
``(seed, class id, index)``, so any image can be regenerated alone and the data set does not depend on how it
was batched. ``generate_dataset`` writes the DeepLense folder layout (``train/{no,sphere,vort}/*.npy``,
``val/...``, float32 (1, S, S) min-max scaled) once under a cache dir keyed by every parameter, with a
manifest; ``LensSimulator.render`` makes images in memory (the on-the-fly mode).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from sweeplab.errors import DataError

CLASS_NAMES = ("no", "sphere", "vort")
SPLITS = ("train", "val")
# Validation images use indices from here on, so growing the training set never changes the validation set.
VAL_INDEX_OFFSET = 10_000_000
FORMAT_VERSION = 1  # bump when the physics or file format changes: it is part of the cache key

# f_sub ranges. Measured with a small CNN at 64×64: 4–8 % is learnable from a few thousand images on a CPU,
# 2–4 % needs tens of thousands and a GPU, 0.5–2 % (the realistic range) stayed at chance.
DIFFICULTY = {"high": (0.04, 0.08), "medium": (0.02, 0.04), "realistic": (0.005, 0.02)}


def fsub_range(difficulty) -> tuple[float, float]:
    """``high|medium|realistic`` or an explicit ``[lo, hi]`` → (lo, hi)."""
    if isinstance(difficulty, str):
        if difficulty not in DIFFICULTY:
            raise DataError(
                f"data.difficulty={difficulty!r} is not allowed: choose one of "
                f"{', '.join(DIFFICULTY)} or a range [lo, hi] of the substructure mass fraction"
            )
        return DIFFICULTY[difficulty]
    try:
        lo, hi = (float(v) for v in difficulty)
    except (TypeError, ValueError):
        raise DataError(f"data.difficulty={difficulty!r}: expected high, medium, realistic or [lo, hi]") from None
    if not 0 < lo <= hi < 1:
        raise DataError(f"data.difficulty=[{lo}, {hi}]: the f_sub range must satisfy 0 < lo <= hi < 1")
    return lo, hi


@dataclass(frozen=True)
class SimConfig:
    """Everything an image depends on. Angles in arcsec; the field of view is fixed, so the image size only
    changes the resolution."""

    image_size: int = 64
    fov: float = 5.0  # side of the field, arcsec
    fsub: tuple = DIFFICULTY["high"]  # substructure mass fraction range, both substructure classes
    n_subhalos: tuple = (2, 5)  # sphere: number of subhalos, inclusive range
    vortex_points: int = 8  # vort: point masses along the line
    vortex_length: tuple = (0.4, 0.8)  # vort: length of the line, in units of the main Einstein radius
    noise: float = 0.0  # Gaussian noise std, relative to the noiseless image's peak
    psf_fwhm: float = 0.0  # Gaussian PSF FWHM, arcsec (0: none)
    seed: int = 0
    z_l: float = 0.5
    z_s: float = 1.0

    def __post_init__(self):
        # Lists from a YAML config become tuples, so the config hashes and compares by value.
        for name in ("fsub", "n_subhalos", "vortex_length"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.image_size < 8:
            raise DataError(f"simulated image_size={self.image_size} is too small (>= 8)")
        if not 1 <= self.n_subhalos[0] <= self.n_subhalos[1]:
            raise DataError(f"n_subhalos={list(self.n_subhalos)} must be an inclusive range [lo, hi], lo >= 1")
        if self.vortex_points < 2:
            raise DataError(f"vortex_points={self.vortex_points} must be >= 2 (it is a line)")

    @property
    def slots(self) -> int:
        """Point-mass slots in the lens plane: enough for either substructure class."""
        return max(self.n_subhalos[1], self.vortex_points)

    @property
    def pixelscale(self) -> float:
        return self.fov / self.image_size

    def key(self) -> str:
        blob = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


# Ordered names of the per-image physical parameters (main lens, shear, source); the substructure comes as
# (x, y, Rein) arrays of length `slots`.
MAIN_PARAMS = (
    "sie_q",
    "sie_phi",
    "sie_Rein",
    "gamma_1",
    "gamma_2",
    "src_x0",
    "src_y0",
    "src_q",
    "src_phi",
    "src_n",
    "src_Re",
    "src_Ie",
)
PARK = 1.0e3  # arcsec: unused point-mass slots sit far outside the field ...
PARK_REIN = 1.0e-6  # ... with a negligible mass (Rein 0 with no softening gives NaN in caustics)
SOFTENING = 0.02  # arcsec, the point masses' softening: well below a pixel, keeps deflections finite


def draw_params(cfg: SimConfig, cls: int, index: int) -> dict:
    """The physical parameters of image ``index`` of class ``cls`` (0 no, 1 sphere, 2 vort)."""
    rng = np.random.default_rng([cfg.seed, cls, index])
    p = {
        # Main lens: a typical galaxy-scale SIE, Einstein radius well inside the field.
        "sie_q": rng.uniform(0.6, 0.95),
        "sie_phi": rng.uniform(0, math.pi),
        "sie_Rein": rng.uniform(1.0, 1.4),
        "gamma_1": rng.uniform(-0.05, 0.05),
        "gamma_2": rng.uniform(-0.05, 0.05),
        # An extended source near the optical axis: thick arcs and near-rings, which substructure visibly
        # dents. (Compact, cuspy sources give thin arcs with hot spots that min-max scaling leaves alone.)
        "src_x0": rng.uniform(-0.2, 0.2),
        "src_y0": rng.uniform(-0.2, 0.2),
        "src_q": rng.uniform(0.5, 0.95),
        "src_phi": rng.uniform(0, math.pi),
        "src_n": rng.uniform(0.5, 1.5),
        "src_Re": rng.uniform(0.3, 0.7),
        "src_Ie": 1.0,
    }
    x = np.full(cfg.slots, PARK)
    y = np.full(cfg.slots, PARK)
    r = np.full(cfg.slots, PARK_REIN)
    # The substructure draws come after the shared ones, so they never shift the main lens or the source.
    fsub = rng.uniform(*cfg.fsub)
    R = p["sie_Rein"]
    if cls == 1:  # sphere: subhalos near the ring, where lensing is sensitive to them
        n = int(rng.integers(cfg.n_subhalos[0], cfg.n_subhalos[1] + 1))
        w = rng.dirichlet(np.ones(n))
        rad, ang = R * rng.uniform(0.75, 1.25, n), rng.uniform(0, 2 * math.pi, n)
        x[:n], y[:n] = rad * np.cos(ang), rad * np.sin(ang)
        r[:n] = R * np.sqrt(fsub * w)
    elif cls == 2:  # vort: equal masses along a line crossing the ring at a random place and angle
        m = cfg.vortex_points
        rad, ang = R * rng.uniform(0.75, 1.25), rng.uniform(0, 2 * math.pi)
        length, tilt = R * rng.uniform(*cfg.vortex_length), rng.uniform(0, math.pi)
        t = np.linspace(-0.5, 0.5, m) * length
        x[:m] = rad * math.cos(ang) + t * math.cos(tilt)
        y[:m] = rad * math.sin(ang) + t * math.sin(tilt)
        r[:m] = R * math.sqrt(fsub / m)
    p.update(sub_x=x, sub_y=y, sub_Rein=r, fsub=fsub if cls else 0.0)
    p["noise_seed"] = int(rng.integers(2**31))
    return p


class LensSimulator:
    """caustics LensSource of SIE + shear + a BatchedPlane of point masses; renders batches with vmap."""

    def __init__(self, cfg: SimConfig):
        import caustics

        self.cfg = cfg
        cosmo = caustics.FlatLambdaCDM(name="cosmo")
        sie = caustics.SIE(cosmology=cosmo, name="sie", x0=0.0, y0=0.0)
        shear = caustics.ExternalShear(cosmology=cosmo, name="shear", x0=0.0, y0=0.0)
        point = caustics.Point(cosmology=cosmo, name="sub", s=SOFTENING)
        for param in (point.x0, point.y0, point.Rein):
            param.batch_shape = (cfg.slots,)  # one Point vmapped over the slots by the BatchedPlane
        subs = caustics.BatchedPlane(cosmology=cosmo, lens=point, name="subs")
        lens = caustics.SinglePlane(cosmology=cosmo, lenses=[sie, shear, subs], name="lens", z_l=cfg.z_l, z_s=cfg.z_s)
        source = caustics.Sersic(name="src")
        psf = gaussian_psf(cfg.psf_fwhm, cfg.pixelscale) if cfg.psf_fwhm > 0 else [[1.0]]
        self.sim = caustics.LensSource(
            lens=lens, source=source, pixelscale=cfg.pixelscale, pixels_x=cfg.image_size, psf=psf, name="sim"
        )
        # The flat parameter vector follows caustics' own ordering of the dynamic parameters; map each one
        # to our names once, so a caustics update that reorders them cannot silently scramble the images.
        names = {
            ("sie", "q"): "sie_q",
            ("sie", "phi"): "sie_phi",
            ("sie", "Rein"): "sie_Rein",
            ("shear", "gamma_1"): "gamma_1",
            ("shear", "gamma_2"): "gamma_2",
            ("sub", "x0"): "sub_x",
            ("sub", "y0"): "sub_y",
            ("sub", "Rein"): "sub_Rein",
            **{("src", k): f"src_{k}" for k in ("x0", "y0", "q", "phi", "n", "Re", "Ie")},
        }
        self.order = [names[(next(iter(q.parents)).name, q.name)] for q in self.sim.dynamic_params]
        self._render = torch.vmap(self.sim)  # sim(X) on a 2-D batch fails; vmap over the rows works

    def vector(self, params: Sequence[dict], smooth: bool = False) -> torch.Tensor:
        """[B, P] parameter matrix; ``smooth`` parks every substructure slot (the same lens without it)."""
        cols = []
        for name in self.order:
            if name.startswith("sub_"):
                if smooth:
                    fill = PARK_REIN if name == "sub_Rein" else PARK
                    cols.append(np.full((len(params), self.cfg.slots), fill))
                else:
                    cols.append(np.stack([p[name] for p in params]))
            else:
                cols.append(np.array([[p[name]] for p in params]))
        return torch.from_numpy(np.concatenate(cols, axis=1)).float()

    @torch.no_grad()
    def render(self, params: Sequence[dict], smooth: bool = False, raw: bool = False) -> np.ndarray:
        """float32 [B, 1, S, S]: noise added (unless ``raw``), then min-max scaled to [0, 1] per image."""
        images = self._render(self.vector(params, smooth)).double().numpy()
        if raw:
            return images[:, None].astype(np.float32)
        out = np.empty((len(params), 1, *images.shape[1:]), np.float32)
        for i, (img, p) in enumerate(zip(images, params)):
            if self.cfg.noise > 0:
                noise = np.random.default_rng(p["noise_seed"]).standard_normal(img.shape)
                img = img + self.cfg.noise * img.max() * noise
            lo, hi = img.min(), img.max()
            out[i, 0] = (img - lo) / (hi - lo) if hi > lo else 0.0
        return out

    def images(self, cls: int, indices: Sequence[int], smooth: bool = False) -> np.ndarray:
        return self.render([draw_params(self.cfg, cls, int(i)) for i in indices], smooth=smooth)


def gaussian_psf(fwhm: float, pixelscale: float) -> torch.Tensor:
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2))) / pixelscale
    half = max(int(math.ceil(3 * sigma)), 1)
    ax = torch.arange(-half, half + 1, dtype=torch.float32)
    k = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    return k / k.sum()


def split_indices(split: str, n: int) -> range:
    start = VAL_INDEX_OFFSET if split == "val" else 0
    return range(start, start + n)


# ------------------------------------------------------------------ the cached data set
@dataclass
class GenerationReport:
    root: Path
    generated: bool
    seconds: float = 0.0
    images: int = 0
    manifest: dict = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else math.nan


def dataset_dir(cache_dir: Path, cfg: SimConfig, counts: dict) -> Path:
    blob = json.dumps({"sim": cfg.key(), "counts": counts}, sort_keys=True).encode()
    name = f"S{cfg.image_size}_{counts['train']}x{len(CLASS_NAMES)}_{hashlib.sha1(blob).hexdigest()[:12]}"
    return Path(cache_dir).expanduser() / "lensing_sim" / name


def generate_dataset(
    cache_dir: Path, cfg: SimConfig, train_per_class: int, val_per_class: int, batch: int = 128, log=None
) -> GenerationReport:
    """Write the DeepLense layout under ``cache_dir`` once; later calls with the same parameters reuse it.

    Built in a temporary sibling dir and renamed into place when complete, so an interrupted run leaves
    nothing that looks finished, and two processes racing to build it both end up with one good copy."""
    counts = {"train": int(train_per_class), "val": int(val_per_class)}
    root = dataset_dir(cache_dir, cfg, counts)
    if (root / "manifest.json").is_file():
        return GenerationReport(root, False, manifest=json.loads((root / "manifest.json").read_text()))
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    sim = LensSimulator(cfg)
    t0, total = time.perf_counter(), sum(counts.values()) * len(CLASS_NAMES)
    done = 0
    # The vmapped ops are small: one thread is ~3× faster than two here (610 vs 192 images/s at 64×64
    # on a 2-core box), and training's thread count is restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for split in SPLITS:
            for cls, name in enumerate(CLASS_NAMES):
                folder = tmp / split / name
                folder.mkdir(parents=True)
                idx = split_indices(split, counts[split])
                for a in range(0, len(idx), batch):
                    chunk = idx[a : a + batch]
                    for i, img in zip(chunk, sim.images(cls, chunk)):
                        np.save(folder / f"{i:08d}.npy", img)
                    done += len(chunk)
                    if log and done % (batch * 10) < batch:
                        log(f"simulated {done}/{total} images ({done / (time.perf_counter() - t0):.0f}/s)")
        seconds = time.perf_counter() - t0
        save_example_grid(sim, tmp / "examples.png")
        import caustics

        manifest = {
            "format": FORMAT_VERSION,
            "sim": asdict(cfg),
            "classes": list(CLASS_NAMES),
            "counts": {s: {c: counts[s] for c in CLASS_NAMES} for s in SPLITS},
            "index_offsets": {"train": 0, "val": VAL_INDEX_OFFSET},
            "file": {"dtype": "float32", "shape": [1, cfg.image_size, cfg.image_size], "scaling": "min-max"},
            "seconds": round(seconds, 2),
            "images_per_s": round(total / seconds, 1),
            "torch_threads": 1,
            "caustics": caustics.__version__,
        }
        from sweeplab.io import write_json

        write_json(tmp / "manifest.json", manifest)
        try:
            os.replace(tmp, root)  # atomic: the data set appears whole or not at all
        except OSError:
            if not (root / "manifest.json").is_file():  # not a lost race: a real problem
                raise
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(tmp, ignore_errors=True)
    return GenerationReport(root, True, seconds, total, manifest)


def save_example_grid(sim: LensSimulator, path: Path, per_class: int = 6) -> None:
    """One row of images per class, then each substructure class's residual against its smooth lens
    (the same main lens and source without the substructure) to show what the network must find."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweeplab.io import save_figure

    rows = [(name, sim.images(c, range(per_class))) for c, name in enumerate(CLASS_NAMES)]
    for c, name in enumerate(CLASS_NAMES[1:], start=1):
        params = [draw_params(sim.cfg, c, i) for i in range(per_class)]
        residual = sim.render(params, raw=True) - sim.render(params, smooth=True, raw=True)
        rows.append((f"{name} − smooth", residual))
    fig, axes = plt.subplots(
        len(rows), per_class, figsize=(1.8 * per_class, 1.9 * len(rows)), squeeze=False, layout="constrained"
    )
    for r, (label, imgs) in enumerate(rows):
        for i in range(per_class):
            ax = axes[r, i]
            img = imgs[i, 0]
            if "smooth" in label:
                v = float(np.abs(img).max()) or 1.0
                ax.imshow(img, origin="lower", cmap="RdBu_r", vmin=-v, vmax=v)
            else:
                ax.imshow(img, origin="lower", cmap="inferno")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(
        f"simulated lenses, {sim.cfg.image_size}×{sim.cfg.image_size}, f_sub {sim.cfg.fsub[0]:.3g}–"
        f"{sim.cfg.fsub[1]:.3g}",
        fontsize=10,
    )
    save_figure(fig, path)
    plt.close(fig)


def measure_speed(image_size: int, n: int = 256, batch: int = 128, threads: int | None = None) -> float:
    """Images per second for the default physics at ``image_size`` (simulation + scaling, no disk)."""
    if threads:
        torch.set_num_threads(threads)
    sim = LensSimulator(SimConfig(image_size=image_size))
    sim.images(1, range(8))  # warm-up: first vmap call traces
    t0 = time.perf_counter()
    for a in range(0, n, batch):
        sim.images(a // batch % 3, range(a, min(a + batch, n)))
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":  # python -m sweeplab.data.lensing_sim [threads]: the speed figures of the README
    import sys

    t = int(sys.argv[1]) if len(sys.argv) > 1 else None
    for size in (64, 150):
        print(
            f"{size}x{size}: {measure_speed(size, n=512 if size == 64 else 128, threads=t):.0f} images/s "
            f"on {torch.get_num_threads()} threads"
        )

"""Lensing study: the caustics simulator, the DeepLense-layout loader and its bad-input errors,
both networks end to end, and a short training that learns."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_image, build
from sweeplab.data import lensing_sim as ls
from sweeplab.errors import DataError

SMALL = ls.SimConfig(image_size=24)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny convolutions on 2 shared cores: with 2 intra-op threads a training step was measured 40× slower
    (1.1 s vs 28 ms) whenever another process held a core, so these tests use one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lensing_dm(**kwargs):
    """The shipped data=lensing datamodule with ``kwargs`` in place of its YAML values."""
    return build("data", "data=lensing", **kwargs)


@pytest.fixture(scope="module")
def sim():
    return ls.LensSimulator(SMALL)


@pytest.fixture(scope="session")
def lensing_cache(tmp_path_factory):
    """One simulated cache dir shared by the end-to-end runs (the default is ~/.cache/sweeplab)."""
    return tmp_path_factory.mktemp("lensing_cache")


# ------------------------------------------------------------------ simulator
def test_images_are_a_function_of_seed_class_and_index(sim):
    batch = sim.images(1, [3, 4, 5])
    alone = ls.LensSimulator(SMALL).images(1, [4])  # a fresh simulator, another batch composition
    np.testing.assert_allclose(batch[1], alone[0], atol=1e-6)
    assert batch.shape == (3, 1, 24, 24) and batch.dtype == np.float32
    assert batch.min() == 0.0 and batch.max() == 1.0  # min-max scaled per image
    other_seed = ls.LensSimulator(ls.SimConfig(image_size=24, seed=1)).images(1, [4])
    assert np.abs(other_seed - alone).max() > 0.05
    assert np.abs(sim.images(2, [4]) - alone).max() > 0.05  # the class is part of the seed


def test_classes_differ_from_the_smooth_lens(sim):
    """Render every image again with its substructure removed: `no` is unchanged, the substructure
    classes change by a clear amount, and their f_sub comes from the same range."""
    n = 12
    for cls, name in enumerate(ls.CLASS_NAMES):
        params = [ls.draw_params(SMALL, cls, i) for i in range(n)]
        full, smooth = sim.render(params, raw=True), sim.render(params, smooth=True, raw=True)
        rel = np.abs(full - smooth).sum((1, 2, 3)) / np.abs(smooth).sum((1, 2, 3))
        fsub = np.array([p["fsub"] for p in params])
        if name == "no":
            assert rel.max() == 0.0 and (fsub == 0).all()
        else:
            assert rel.min() > 0.02, (name, rel)  # every image, not just on average
            assert ((SMALL.fsub[0] <= fsub) & (fsub <= SMALL.fsub[1])).all()
            # f_sub is Σ (r_i / R)² over the slots in use
            for p in params:
                used = p["sub_Rein"] > ls.PARK_REIN
                fsub_i = np.sum((p["sub_Rein"][used] / p["sie_Rein"]) ** 2)
                assert fsub_i == pytest.approx(p["fsub"], rel=1e-9)


def test_sphere_and_vort_arrange_the_same_mass_differently():
    """Same f_sub range, different geometry: subhalos are 2-5 unequal clumps, the vortex a straight
    string of equal masses."""
    for i in range(8):
        s, v = ls.draw_params(SMALL, 1, i), ls.draw_params(SMALL, 2, i)
        s_used, v_used = s["sub_Rein"] > ls.PARK_REIN, v["sub_Rein"] > ls.PARK_REIN
        assert SMALL.n_subhalos[0] <= s_used.sum() <= SMALL.n_subhalos[1]
        assert v_used.sum() == SMALL.vortex_points and np.ptp(v["sub_Rein"][v_used]) < 1e-12
        pts = np.stack([v["sub_x"][v_used], v["sub_y"][v_used]], 1)
        assert np.linalg.matrix_rank(pts[1:] - pts[0], tol=1e-9) == 1  # collinear


def test_difficulty_names_and_ranges():
    assert ls.fsub_range("high") == (0.04, 0.08) and ls.fsub_range([0.01, 0.03]) == (0.01, 0.03)
    for bad in ("hard", [0.3, 0.1], [0, 0.1], "x"):
        with pytest.raises(DataError, match="difficulty"):
            ls.fsub_range(bad)


def test_generated_dataset_layout_manifest_and_reuse(tmp_path):
    cfg = ls.SimConfig(image_size=16)
    first = ls.generate_dataset(tmp_path, cfg, train_per_class=3, val_per_class=2)
    assert first.generated and first.images == 15
    root = first.root
    for split, n in (("train", 3), ("val", 2)):
        for name in ls.CLASS_NAMES:
            files = sorted((root / split / name).glob("*.npy"))
            assert len(files) == n
            arr = np.load(files[0])
            assert arr.shape == (1, 16, 16) and arr.dtype == np.float32
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["sim"]["image_size"] == 16 and manifest["counts"]["val"]["vort"] == 2
    assert (root / "examples.png").stat().st_size > 0
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temp dir left behind
    # the files are the simulator's images: index i of train, VAL_INDEX_OFFSET + i of val
    sim = ls.LensSimulator(cfg)
    np.testing.assert_allclose(
        np.load(root / "val" / "sphere" / f"{ls.VAL_INDEX_OFFSET + 1:08d}.npy"),
        sim.images(1, [ls.VAL_INDEX_OFFSET + 1])[0],
        atol=1e-6,
    )
    again = ls.generate_dataset(tmp_path, cfg, train_per_class=3, val_per_class=2)
    assert not again.generated and again.root == root
    other = ls.generate_dataset(tmp_path, ls.SimConfig(image_size=16, noise=0.05), 3, 2)
    assert other.root != root  # every parameter is part of the cache key


def test_noise_and_psf_options(sim):
    params = [ls.draw_params(SMALL, 1, i) for i in range(2)]
    clean = sim.render(params)
    noisy = ls.LensSimulator(ls.SimConfig(image_size=24, noise=0.1)).render(params)
    clean_raw = sim.render(params, raw=True)
    blurred = ls.LensSimulator(ls.SimConfig(image_size=24, psf_fwhm=0.4)).render(params, raw=True)
    assert np.abs(noisy - clean).mean() > 0.01
    assert np.corrcoef(noisy.ravel(), clean.ravel())[0, 1] > 0.5  # noise on top of the same lens
    assert (noisy == ls.LensSimulator(ls.SimConfig(image_size=24, noise=0.1)).render(params)).all()  # seeded
    peakiness = lambda a: a.max((1, 2, 3)) / a.sum((1, 2, 3))  # noqa: E731
    assert (peakiness(blurred) < 0.9 * peakiness(clean_raw)).all()  # a PSF spreads the light ...
    np.testing.assert_allclose(blurred.sum((1, 2, 3)), clean_raw.sum((1, 2, 3)), rtol=0.05)  # ... keeping it


# ------------------------------------------------------------------ loader on the real layout
def write_layout(root: Path, train: int = 5, val: int = 2, size: int = 16) -> Path:
    """A tiny DeepLense-layout folder of simulated images (the real data's shapes and dtype)."""
    sim = ls.LensSimulator(ls.SimConfig(image_size=size))
    for split, n, offset in (("train", train, 0), ("val", val, ls.VAL_INDEX_OFFSET)):
        for cls, name in enumerate(ls.CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, img in enumerate(sim.images(cls, range(offset, offset + n))):
                np.save(folder / f"{i}.npy", img)
    return root


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return write_layout(tmp_path_factory.mktemp("deeplense"))


def test_loader_on_a_real_layout(layout):
    dm = lensing_dm(path=str(layout), batch_size=4)
    dm.setup("fit")
    assert dm.model_kwargs() == {"in_channels": 1, "num_classes": 3, "image_size": 16}
    assert dm.class_names == ["no", "sphere", "vort"]
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sizes == {"train": 12, "test": 3, "val": 6}  # 90/10 of train/ per class (at least one each)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.long
    _xv, yv = next(iter(dm.val_dataloader()))
    assert yv.tolist()[:3] == [0, 1, 2]  # evaluation order interleaves the classes
    stats = dm.stats()
    assert stats["train_items"] == 12 and stats["source"] == str(layout)
    # the split is a function of split_seed
    again = lensing_dm(path=str(layout))
    again.setup()
    assert again.splits["test"].files == dm.splits["test"].files
    other = lensing_dm(path=str(layout), split_seed=7)
    other.setup()
    assert other.splits["test"].files != dm.splits["test"].files


def test_loader_accepts_2d_and_float64_files(tmp_path):
    root = write_layout(tmp_path / "d", train=3, val=1)
    f = root / "train" / "no" / "0.npy"
    np.save(f, np.load(f)[0].astype(np.float64))  # (S, S) float64, as some DeepLense exports are
    dm = lensing_dm(path=str(root))
    dm.setup()
    ds = next(d for d in dm.splits.values() if f in d.files)
    x, label = ds[ds.files.index(f)]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and label == 0


@functools.cache
def shipped_augment_params() -> dict:
    import tempfile

    from omegaconf import OmegaConf

    from conftest import compose_job

    with tempfile.TemporaryDirectory() as d:
        return OmegaConf.to_container(compose_job(["data=lensing"], Path(d) / "run").data.augment_params)


def augmenter(*names: str, **params):
    """The shipped data=lensing augmentation settings, ``params`` replacing some: ``cutout={"p": 1}``."""
    from sweeplab.data.lensing import Augment

    shipped = shipped_augment_params()
    return Augment(names, {k: {**v, **params.get(k, {})} for k, v in shipped.items()})


def test_rot90_and_flip_are_the_symmetries_of_the_square():
    x = torch.arange(16.0).reshape(1, 4, 4)
    torch.manual_seed(0)
    both = augmenter("rot90", "flip")
    outs = {tuple(both(x).flatten().tolist()) for _ in range(200)}
    assert len(outs) == 8  # the dihedral group: 4 rotations × optional mirror image
    assert all(sorted(o) == sorted(x.flatten().tolist()) for o in outs)
    turns = {tuple(augmenter("rot90")(x).flatten().tolist()) for _ in range(100)}
    assert len(turns) == 4 and tuple(x.flatten().tolist()) in turns
    assert all((augmenter(n, **{n: {"p": 0.0}})(x) == x).all() for n in ("rot90", "flip", "crop", "cutout"))
    flips = [bool((augmenter("flip", flip={"p": 0.25})(x) != x).any()) for _ in range(400)]
    assert 0.15 < np.mean(flips) < 0.35  # p is the chance of acting


def test_crop_is_a_translation_padded_with_the_sky():
    x = torch.zeros(1, 12, 12)
    x[0, 5, 6] = 1.0  # one bright pixel, the rest sky
    crop = augmenter("crop", crop={"p": 1.0, "padding": 3})
    torch.manual_seed(1)
    shifts = set()
    for _ in range(100):
        out = crop(x)
        assert out.shape == x.shape and out.sum() == 1.0 and out.min() == 0.0  # moved, not resized
        ((r, c),) = (out[0] == 1).nonzero().tolist()
        shifts.add((r - 5, c - 6))
    assert {dy for dy, _ in shifts} == {dx for _, dx in shifts} == set(range(-3, 4))  # up to ±padding
    edge = torch.ones(1, 8, 8)
    edge[0, 0, 0] = 0.25  # the minimum fills what comes in
    outs = [crop(edge) for _ in range(20)]
    assert all(set(o.unique().tolist()) <= {0.25, 1.0} for o in outs)


def test_cutout_blanks_one_square_to_the_minimum():
    x = torch.rand(1, 32, 32) + 1.0
    x[0, 0, 0] = 0.0  # the minimum, in a corner
    cut = augmenter("cutout", cutout={"p": 1.0, "size": 6})
    torch.manual_seed(2)
    inside = 0
    for _ in range(50):
        out = cut(x)
        blank = out[0] != x[0]
        blank[0, 0] = bool(blank[0, 1] and blank[1, 0])  # the corner holds the fill value already
        rows, cols = blank.any(1).nonzero().flatten(), blank.any(0).nonzero().flatten()
        assert len(rows) <= 6 and len(cols) <= 6 and blank.sum() == len(rows) * len(cols)  # one (clipped) square
        assert (out[0][blank] == x.min()).all()  # blanked to the minimum, nothing else changed
        inside += int(blank.sum() == 36)
    assert inside > 20  # most squares lie wholly inside; those at the edge are clipped
    assert (x[0].flatten()[1:] > 1.0).all()  # the input is left alone


def test_augmentations_compose_in_the_order_listed_and_only_for_training(layout):
    torch.manual_seed(3)
    x = torch.rand(1, 16, 16)
    cut_then_turn = augmenter("cutout", "rot90", cutout={"p": 1.0, "size": 4})
    assert [fn.__name__ for fn, _ in cut_then_turn.steps] == ["cutout", "rot90"]
    for _ in range(10):  # both act: one of the four orientations of x with one square blanked
        out = cut_then_turn(x)
        changed = [int((torch.rot90(out, -k, dims=(-2, -1)) != x).sum()) for k in range(4)]
        assert 0 < min(changed) <= 16
    small = {"rot90": {"p": 1.0}, "flip": {"p": 0.5}, "crop": {"p": 1.0, "padding": 2}, "cutout": {"p": 1.0, "size": 4}}
    dm = lensing_dm(path=str(layout), augment=["rot90", "flip", "crop", "cutout"], augment_params=small)
    dm.setup("fit")
    assert dm.splits["train"].augment.names == ("rot90", "flip", "crop", "cutout")
    for split in ("val", "test"):
        ds = dm.splits[split]
        assert not ds.augment and (ds[0][0] == ds[0][0]).all()  # evaluation images as they are
    assert dm.stats()["augment"] == "rot90,flip,crop,cutout"
    assert lensing_dm(path=str(layout), augment=[]).augment.names == ()


def test_bad_augmentation_settings_are_refused(layout):
    from sweeplab.config.preflight import check_overrides
    from sweeplab.errors import ConfigError

    for args, message in (
        (["data=lensing", "data.augment=[rot90,flipp]"], "data.augment[]='flipp' is not allowed"),
        (["data=lensing", "data.augment_params.cutout.p=1.5"], "data.augment_params.cutout.p=1.5 is out of range"),
        (["data=lensing", "data.augment_params.crop.padding=-1"], "crop.padding=-1 is out of range"),
        (["data=lensing", "task.test_time_augment=[rot45]"], "task.test_time_augment[]='rot45' is not allowed"),
        (["data=lensing", "model.stochastic_depth=1"], "model.stochastic_depth=1 is out of range"),
        (["data=lensing", "model.stem_stride=3"], "model.stem_stride=3 is not allowed"),
    ):
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            check_overrides(args)
    dm = lensing_dm(path=str(layout), augment=["crop"], augment_params={"crop": {"p": 1.0, "padding": 16}})
    with pytest.raises(ConfigError) as err:
        dm.setup("fit")  # 16-pixel images: the padding is only known to be too big once they are read
    assert str(err.value) == (
        "data.augment_params.crop.padding=16 is out of range for 16-pixel images: it must be < 16"
    )


def _break(root: Path, kind: str) -> tuple[Path, str]:
    """Damage a copy of the layout; returns (the path the error must name, a phrase it must contain)."""
    if kind == "missing class folder":
        import shutil

        shutil.rmtree(root / "val" / "vort")
        return root / "val" / "vort", "missing class folder"
    if kind == "wrong shape":
        f = root / "train" / "sphere" / "1.npy"
        np.save(f, np.zeros((1, 16, 20), np.float32))
        return f, "shape (1, 16, 20)"
    if kind == "shape differs":
        f = root / "val" / "no" / "0.npy"
        np.save(f, np.zeros((1, 8, 8), np.float32))
        return f, "differs from (1, 16, 16)"
    if kind == "wrong dtype":
        f = root / "train" / "vort" / "2.npy"
        np.save(f, np.zeros((1, 16, 16), np.int64))
        return f, "dtype int64"
    if kind == "truncated file":
        f = root / "train" / "no" / "3.npy"
        f.write_bytes(f.read_bytes()[:200])
        return f, "truncated"
    if kind == "not npy":
        f = root / "train" / "no" / "4.npy"
        f.write_bytes(b"PK\x03\x04 this is a zip, not an array")
        return f, "not a readable .npy"
    if kind == "empty class":
        for f in (root / "train" / "sphere").glob("*.npy"):
            f.unlink()
        return root / "train" / "sphere", "empty class folder"
    if kind == "unknown class folder":
        (root / "train" / "cats").mkdir()
        (root / "train" / "dogs").mkdir()
        return root / "train", "unknown class folder(s) in"
    raise ValueError(kind)


BAD = [
    "missing class folder",
    "wrong shape",
    "shape differs",
    "wrong dtype",
    "truncated file",
    "not npy",
    "empty class",
    "unknown class folder",
]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_fails_in_one_line_naming_the_file(kind, layout, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(layout, root)
    culprit, phrase = _break(root, kind)
    with pytest.raises(DataError) as err:
        lensing_dm(path=str(root)).setup("fit")
    msg = str(err.value)
    assert "\n" not in msg and str(culprit) in msg and phrase in msg, msg
    if kind == "unknown class folder":
        assert "cats, dogs" in msg and "no, sphere, vort" in msg


def test_bad_path_through_the_pipeline_is_one_line_error(run_job, tmp_path, lensing_cache):
    with pytest.raises(SystemExit):
        run_job(
            "data=lensing",
            "model=resnet",
            f"data.path={tmp_path / 'nowhere'}",
            f"paths.data_dir={lensing_cache}",
            name="bad",
        )
    m = json.loads((tmp_path / "bad" / "metrics.json").read_text())
    assert m["status"] == "failed" and "nowhere" in m["error"] and "\n" not in m["error"]


# ------------------------------------------------------------------ networks and training
FACTS = {"in_channels": 1, "num_classes": 3}


def network(model: str, size: int, width: int, depth: int, *overrides: str):
    args = (f"model={model}", f"model.width={width}", f"model.depth={depth}", *overrides)
    return build("model", "data=lensing", *args, **FACTS, image_size=size)


def test_stochastic_depth_drops_whole_images_in_training_only():
    from sweeplab.models.densenet_cbam import StochasticDepth, linear_decay

    drop = StochasticDepth(0.5)
    x = torch.ones(4000, 3, 2, 2)
    torch.manual_seed(0)
    per_image = drop.train()(x).flatten(1)
    assert set(per_image.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1 / (1 - p)
    assert (per_image == per_image[:, :1]).all()  # a whole image's branch at a time, not single units
    assert abs(float(per_image.mean()) - 1.0) < 0.05  # the expectation is kept
    assert (drop.eval()(x) == x).all()
    assert linear_decay(0.2, 4) == pytest.approx([0.05, 0.1, 0.15, 0.2])


@pytest.mark.parametrize("model,layers", [("resnet", 4 * 2), ("densenet_cbam", 3 * 2)])
def test_networks_stochastic_depth_is_random_in_training_and_off_in_evaluation(model, layers):
    from sweeplab.models.densenet_cbam import StochasticDepth, linear_decay

    net = network(model, 32, 4, 2, "model.stochastic_depth=0.5", "model.dropout=0")
    rates = [m.p for m in net.modules() if isinstance(m, StochasticDepth)]
    assert rates == pytest.approx(linear_decay(0.5, layers))  # one per block / dense layer, rising to the last
    assert not any(isinstance(m, StochasticDepth) for m in network(model, 32, 4, 2).modules())
    for m in net.modules():  # the ResNet starts each residual branch at zero: give them something to drop
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
    x = torch.randn(8, 1, 32, 32)
    net.train()
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outs.append(net(x))
    assert torch.equal(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])  # only the drops differ
    net.eval()
    assert torch.equal(net(x), net(x))


def test_stem_stride_keeps_or_halves_the_resolution():
    full, halved = (network("resnet", 32, 4, 1, f"model.stem_stride={s}").features[0] for s in (1, 2))
    x = torch.randn(1, 1, 32, 32)
    assert full(x).shape[-1] == 32 and halved(x).shape[-1] == 16


def test_resnet_downsamples_by_stride_or_max_pool():
    """model.downsample: the same resolutions stage by stage, by a stride-2 conv or by a 2×2 max-pool."""
    by = {d: network("resnet", 32, 4, 1, f"model.downsample={d}") for d in ("stride", "maxpool")}
    strided = [m for m in by["stride"].modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 2 * 3 and not any(isinstance(m, torch.nn.MaxPool2d) for m in by["stride"].modules())
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in by["maxpool"].modules()) == 3
    assert not any(isinstance(m, torch.nn.Conv2d) and m.stride != (1, 1) for m in by["maxpool"].modules())
    x = torch.randn(2, 1, 32, 32)
    shapes = {d: net.features(x).shape for d, net in by.items()}
    assert shapes["stride"] == shapes["maxpool"] == (2, 4 * 2**3, 4, 4)


def test_densenet_downsamples_by_average_or_max_pool_and_the_original_keeps_its_own():
    """model=densenet_cbam's downsample: maxpool convolves the stem at full resolution and max-pools it, and
    max-pools in the transitions; avgpool is the paper's strided stem and average pools, which the original
    script's network (densenet_cbam_seed) keeps."""
    by = {d: network("densenet_cbam", 32, 4, 1, f"model.downsample={d}") for d in ("avgpool", "maxpool")}
    kinds = {d: [type(m).__name__ for m in net.modules() if isinstance(m, (torch.nn.AvgPool2d, torch.nn.MaxPool2d))]
             for d, net in by.items()}  # fmt: skip
    assert kinds == {"avgpool": ["AvgPool2d"] * 2, "maxpool": ["MaxPool2d"] * 3}  # stem + 2 transitions
    assert by["maxpool"].features[0][0].stride == (1, 1) and by["avgpool"].features[0][0].stride == (2, 2)
    x = torch.randn(2, 1, 32, 32)
    assert by["avgpool"].features(x).shape == by["maxpool"].features(x).shape
    seed = build("model", "data=lensing", "model=densenet_cbam_seed", **FACTS, image_size=32)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in seed.modules())


def test_densenet_attention_starts_neutral_and_the_original_keeps_its_random_gates():
    """attention_init=neutral (the default): every CBAM block halves its input twice (channel gate, then spatial
    gate, both 1/2 everywhere) until training moves it; the original script's network keeps random gates,
    which scale each position and channel differently."""
    from sweeplab.models.densenet_cbam import CBAM

    x = torch.rand(2, 16, 8, 8) + 0.1
    for model, neutral in (("densenet_cbam", True), ("densenet_cbam_seed", False)):
        net = build("model", "data=lensing", f"model={model}", **FACTS, image_size=32)
        blocks = [m for m in net.modules() if isinstance(m, CBAM)]
        assert len(blocks) == 3
        for cbam in blocks:
            channels = cbam.channel.mlp[0].in_channels
            ratio = cbam(x[:, :1].expand(2, channels, 8, 8)) / x[:, :1]
            assert torch.allclose(ratio, torch.full_like(ratio, 0.25)) == neutral, model


def classifier_task(*overrides: str, size: int = 16):
    """The classifier task of data=lensing, built as the run builds it, with a tiny dropout-free ResNet."""
    import tempfile

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from conftest import compose_job

    args = ["data=lensing", "model.width=4", "model.depth=1", "model.dropout=0", *overrides]
    cfg = compose_job(args, Path(tempfile.mkdtemp()))
    facts = {**FACTS, "image_size": size}
    net = instantiate(cfg.model, **facts)
    task = instantiate(cfg.task, _partial_=True)(
        net=net, optimizer=None, scheduler=None, loss=OmegaConf.to_container(cfg.loss), meta={"model_kwargs": facts}
    )
    task.log = lambda *a, **k: None  # no Trainer here to log to
    return task


def test_test_time_augment_scores_the_mean_over_the_symmetries():
    from sweeplab.tasks.classifier import views

    task = classifier_task("task.test_time_augment=[rot90,flip]").eval()
    x = torch.randn(5, 1, 16, 16)
    seen = views(x, ["rot90", "flip"])
    assert len(seen) == 8 and len({tuple(v[0].flatten().tolist()) for v in seen}) == 8 and torch.equal(seen[0], x)
    assert len(views(x, ["rot90"])) == 4 and len(views(x, ["flip"])) == 2
    with torch.no_grad():
        p = task.predict_proba(x)
        singles = torch.stack([task.net(v).softmax(-1) for v in seen])
        assert torch.allclose(p, singles.mean(0), atol=1e-6)
        assert not torch.allclose(singles[0], singles[1], atol=1e-4)  # the network alone is not invariant ...
        for v in seen:  # ... its averaged predictions are
            assert torch.allclose(task.predict_proba(v), p, atol=1e-5)
        task.test_time_augment = ()
        assert torch.allclose(task.predict_proba(x), singles[0], atol=1e-6)


def test_mixup_blends_and_cutmix_pastes_with_their_loss():
    import torch.nn.functional as F

    x, y = torch.randn(8, 1, 16, 16), torch.arange(8) % 3
    mix = classifier_task("task.mixup_alpha=0.4")
    torch.manual_seed(0)
    mixed, y_other, lam = mix._mix(x, y)
    assert 0 < lam < 1
    other = (mixed - lam * x) / (1 - lam)  # the partner images, recovered
    partner = [int(torch.cdist(o.flatten()[None], x.flatten(1)).argmin()) for o in other]
    assert torch.allclose(other, x[partner], atol=1e-4) and torch.equal(y_other, y[partner])
    assert sorted(partner) == list(range(8))  # a permutation of the batch

    cut = classifier_task("task.cutmix_alpha=1.0")
    torch.manual_seed(1)
    pasted, y_other, lam = cut._mix(x, y)
    changed = (pasted != x).any(0)[0]  # the box, over the whole batch
    rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
    assert changed.sum() == len(rows) * len(cols) > 0  # one rectangle
    assert lam == pytest.approx(1 - len(rows) * len(cols) / 256)  # the share of each image left as it was
    box = (slice(None), slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    for i in range(8):  # outside the box the image itself; inside, another image's box, whose label is y_other
        outside = pasted[i].clone()
        outside[box] = x[i][box]
        assert torch.equal(outside, x[i])
        src = [j for j in range(8) if torch.equal(pasted[i][box], x[j][box])]
        assert len(src) == 1 and y_other[i] == y[src[0]]

    for task in (mix, cut):  # the loss is lam·CE(y) + (1-lam)·CE(y_other) on the mixed batch
        torch.manual_seed(5)
        loss = task.training_step((x, y), 0)
        torch.manual_seed(5)
        mixed, y_other, lam = task._mix(x, y)
        logits = task.net(mixed)
        expected = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y_other)
        assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    both = classifier_task("task.mixup_alpha=0.4", "task.cutmix_alpha=1.0")
    kinds = set()
    for seed in range(20):  # one of the two per batch: a blend changes every pixel, a box only some
        torch.manual_seed(seed)
        out, _, _ = both._mix(x, y)
        kinds.add(bool((out != x).all()))
    assert kinds == {True, False}


def test_networks_shapes_and_sizes():
    for size in (32, 64, 150):
        x = torch.randn(2, 1, size, size)
        for net in (network("densenet_cbam", size, 4, 2), network("resnet", size, 4, 1)):
            assert net(x).shape == (2, 3)
    # width and depth are the size knobs
    count = lambda n: sum(p.numel() for p in n.parameters())  # noqa: E731
    assert count(network("densenet_cbam", 64, 4, 2)) < count(network("densenet_cbam", 64, 8, 3))
    assert count(network("resnet", 64, 8, 1)) < count(network("resnet", 64, 16, 2))


@pytest.mark.parametrize("model,on_the_fly", [("densenet_cbam", False), ("resnet", True), (None, False)])
def test_each_network_fast_dev_run_64px(model, on_the_fly, run_job, lensing_cache):
    """Each network end to end; with no model= the data set's default (the ResNet), its augmentations and
    rotation-averaged scoring."""
    out, m = run_job(
        "data=lensing",
        *([f"model={model}"] if model else []),
        "debug=fast_dev_run",
        "data.train_per_class=6",
        "data.val_per_class=3",
        "data.batch_size=8",
        f"data.on_the_fly={str(on_the_fly).lower()}",
        f"paths.data_dir={lensing_cache}",
    )
    assert m["status"] == "completed", m.get("error")
    assert m["data"]["image_size"] == 64
    for key in ("test/loss", "test/acc", "test/f1", "test/auc", "test/auc_vort"):
        assert math.isfinite(m["final"][key]), key
    assert_image(out / "roc.png")  # written by the run from the figures the task returned
    assert_image(out / "confusion.png")
    block = m["classification"]
    conf = block["confusion_matrix"]
    assert len(conf) == 3 and sum(map(sum, conf)) == m["data"]["test_items"] == 3  # 10 % of 6, at least 1 per class
    # the class names come from the datamodule: in the block and in the logged per-class AUCs
    assert block["split"] == "test" and block["classes"] == ["no", "sphere", "vort"]
    assert block["auc_per_class"] == {n: m["final"][f"test/auc_{n}"] for n in block["classes"]}
    assert block["acc"] == pytest.approx(sum(conf[i][i] for i in range(3)) / 3)
    if model is None:
        assert m["choices"]["model"] == "resnet" and m["data"]["augment"] == "rot90,flip"
        assert block["test_time_augment"] == ["rot90"]


def test_short_training_beats_chance(run_job, lensing_cache):
    """A small simulated set (48 px, 500 images per class) with heavier substructure: the seed's recipe at a
    higher learning rate learns it in ten short epochs (chance: accuracy 1/3, AUC 0.5; measured: val AUC
    0.91, test AUC 0.92, 27 s)."""
    out, m = run_job(
        "experiment=lensing_seed",
        "model=resnet",
        "model.width=8",
        "model.depth=1",
        "data.image_size=48",
        "data.difficulty=[0.15,0.25]",
        "data.train_per_class=500",
        "data.val_per_class=60",
        "optimizer.lr=3e-3",
        "scheduler.warmup_epochs=1",
        "loss.smoothing_start_epoch=1",
        "trainer.max_epochs=10",
        f"paths.data_dir={lensing_cache}",
    )
    assert m["status"] == "completed", m.get("error")
    best = m["best"]
    assert best["val/auc"] > 0.8 and best["val/acc"] > 0.6, best
    assert m["final"]["test/auc"] > 0.8 and m["final"]["test/acc"] > 0.55, m["final"]
    assert (out / "roc.png").is_file() and (out / "confusion.png").is_file()
    # the checkpoint alone rebuilds the classifier: sweeplab-eval reproduces the run's test metrics
    from sweeplab.runs.inference import evaluate

    again = evaluate(out)
    assert again["test/auc"] == pytest.approx(m["final"]["test/auc"], abs=1e-5)


def test_channels_last_computes_the_same_step_as_nchw():
    """task.channels_last (the default) converts the convolutions' weights and each batch to NHWC: the same
    logits, loss and gradients as PyTorch's default layout."""
    tasks = {}
    for flag in ("true", "false"):
        torch.manual_seed(0)
        tasks[flag] = classifier_task(f"task.channels_last={flag}")
    nhwc, nchw = tasks["true"], tasks["false"]
    conv = next(m for m in nhwc.net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    x, y = torch.randn(6, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    losses = [t.training_step((x, y), 0) for t in (nhwc, nchw)]
    assert torch.allclose(*losses, atol=1e-5)
    for loss in losses:
        loss.backward()
    grads = [[m.weight.grad for m in t.net.modules() if isinstance(m, torch.nn.Conv2d)] for t in (nhwc, nchw)]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))
    with torch.no_grad():
        assert torch.allclose(nhwc.eval().predict_proba(x), nchw.eval().predict_proba(x), atol=1e-5)

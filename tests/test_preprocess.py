"""Each enhancement step does its job, measured on images with a known fault and on synthetic patterns."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from distil.data.demo import DemoSettings, generate_image
from distil.enhancement.pipeline import (
    STEP_ORDER,
    Pipeline,
    auto_contrast,
    clahe,
    denoise,
    enhance,
    gamma,
    sharpen,
    white_balance,
)
from distil.enhancement.quality import channel_spread, fault_effects, high_frequency, local_contrast

SETTINGS = DemoSettings(n_train=300, n_val=0, imgsz=160, seed=11, fault_fraction=1.0)


def images_with(fault: str, count: int = 6) -> list[np.ndarray]:
    """Demo images that the generator degraded with ``fault``."""
    found = []
    for index in range(SETTINGS.n_train):
        image, _, image_fault = generate_image(SETTINGS, "train", index)
        if image_fault == fault:
            found.append(image)
            if len(found) == count:
                return found
    raise AssertionError(f"not enough {fault} images")


def local_std(image: np.ndarray) -> float:
    return local_contrast(image)


def test_gray_world_neutralises_the_demo_colour_casts():
    for image in images_with("colour_cast"):
        assert channel_spread(white_balance(image, method="gray_world")) < 0.5 * channel_spread(image)


def scene_with_white_card_under_warm_light() -> np.ndarray:
    """A mostly green scene with a white card, lit by warm light (red up, blue down)."""
    scene = np.zeros((60, 60, 3), np.float32)
    scene[:] = (60, 170, 70)  # green foliage dominates: gray world is pulled toward magenta
    scene[10:25, 10:25] = (190, 190, 190)  # the white card (not clipped under the cast)
    scene[40:55, 30:55] = (128, 128, 128)  # a gray wall
    return np.clip(scene * np.array([0.75, 1.0, 1.25]), 0, 255).astype(np.uint8)


def test_white_patch_restores_a_white_card_where_gray_world_fails():
    image = scene_with_white_card_under_warm_light()
    card = (slice(12, 23), slice(12, 23))
    assert channel_spread(image[card]) > 80
    assert channel_spread(white_balance(image, method="white_patch")[card]) < 5
    assert channel_spread(white_balance(image, method="gray_world")[card]) > 40


def test_white_balance_on_a_uniform_cast_patch_gives_gray():
    patch = np.full((32, 32, 3), (60, 120, 200), np.uint8)
    assert channel_spread(white_balance(patch)) <= 1.0


@pytest.mark.parametrize("fault", ["underexposed", "overexposed"])
def test_auto_gamma_moves_mean_brightness_toward_the_middle(fault):
    for image in images_with(fault):
        before = abs(image.mean() - 127.5)
        after = abs(gamma(image, gamma="auto").mean() - 127.5)
        assert after < 0.6 * before


def test_fixed_gamma_brightens_above_one_and_darkens_below():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    assert gamma(ramp, gamma=2.0).mean() > ramp.mean() + 20
    assert gamma(ramp, gamma=0.5).mean() < ramp.mean() - 20
    assert gamma(ramp, gamma=2.0)[0, 0] == 0 and gamma(ramp, gamma=2.0)[0, 255] == 255


def test_clahe_raises_local_contrast_without_clipping_most_pixels():
    for image in images_with("low_contrast"):
        out = clahe(image, clip_limit=2.0)
        assert local_std(out) > 1.3 * local_std(image)
        clipped = ((out == 0) | (out == 255)).mean()
        assert clipped < 0.05


def test_auto_contrast_stretches_a_hazy_image():
    for image in images_with("low_contrast"):
        out = auto_contrast(image, clip=1.0)
        assert np.ptp(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)) > 1.5 * np.ptp(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))


def test_sharpen_raises_high_frequency_energy():
    for image in images_with("blur"):
        assert high_frequency(sharpen(image, amount=1.0)) > 1.3 * high_frequency(image)


def test_denoise_flattens_a_noisy_patch_and_keeps_an_edge():
    rng = np.random.default_rng(0)
    clean = np.full((64, 64, 3), 80, np.uint8)
    clean[:, 32:] = 180  # a vertical edge
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    out = denoise(noisy)
    flat = (slice(8, 56), slice(4, 26))
    assert out[flat].astype(float).var() < 0.5 * noisy[flat].astype(float).var()
    edge_before = float(noisy[:, 34:40].mean() - noisy[:, 24:30].mean())
    edge_after = float(out[:, 34:40].mean() - out[:, 24:30].mean())
    assert edge_after > 0.9 * edge_before  # the step across the edge survives
    for image in images_with("noise"):  # the demo's sensor noise
        assert high_frequency(denoise(image)) < 0.8 * high_frequency(image)


def test_each_step_is_pure_and_keeps_shape_and_dtype():
    image = images_with("colour_cast", 1)[0]
    before = image.copy()
    for name in STEP_ORDER:
        out = enhance(image, **{name: True})
        assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
    assert np.array_equal(image, before)


def test_enhance_runs_only_named_steps_in_canonical_order():
    image = images_with("underexposed", 1)[0]
    assert np.array_equal(enhance(image, white_balance=True), white_balance(image))
    assert np.array_equal(enhance(image, clahe=3.0, gamma=0.8), clahe(gamma(image, gamma=0.8), clip_limit=3.0))
    assert np.array_equal(enhance(image, gamma="auto", sharpen=False), gamma(image, gamma="auto"))
    assert np.array_equal(enhance(image), Pipeline.default()(image))


def test_pipeline_from_dict_keeps_order_and_describes_itself(tmp_path):
    pipeline = Pipeline.from_dict({"clahe": {"clip_limit": 3.0, "tile_grid": 4}, "gamma": "auto",
                                   "sharpen": False})
    assert [name for name, _ in pipeline.steps] == ["clahe", "gamma"]
    text = pipeline.describe()
    assert "1. clahe (clip_limit=3.0, tile_grid=4)" in text and "2. gamma (gamma=auto)" in text
    path = tmp_path / "pipeline.yaml"
    path.write_text("steps:\n  - white_balance: white_patch\n  - clahe: 2.5\n")
    loaded = Pipeline.from_spec(str(path))
    assert loaded.as_dict() == {"white_balance": {"method": "white_patch"}, "clahe": {"clip_limit": 2.5}}
    assert not Pipeline.from_spec("none") and Pipeline.from_spec("default").as_dict() == Pipeline.default().as_dict()


@pytest.mark.parametrize("shape, dtype", [((40, 50), np.uint8), ((40, 50, 1), np.uint8), ((40, 50, 4), np.uint8),
                                          ((1, 1, 3), np.uint8), ((3, 2), np.uint8), ((4000, 3000, 3), np.uint8)])
@pytest.mark.slow
def test_inputs_of_every_kind_are_handled(shape, dtype):
    image = np.random.default_rng(0).integers(0, 256, shape).astype(dtype)
    out = enhance(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    if len(shape) == 3 and shape[2] == 4:
        assert np.array_equal(out[:, :, 3], image[:, :, 3])  # alpha kept


def test_sixteen_bit_and_non_contiguous_inputs():
    image = np.random.default_rng(0).integers(0, 65536, (30, 40, 3)).astype(np.uint16)
    with pytest.warns(UserWarning, match="16-bit image converted to 8-bit"):
        out = enhance(image, gamma=1.0)
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - image // 257).max() <= 1
    view = np.random.default_rng(1).integers(0, 256, (60, 80, 3)).astype(np.uint8)[::2, ::-1]
    assert np.array_equal(enhance(view, clahe=True), enhance(np.ascontiguousarray(view), clahe=True))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 5, 3), np.uint8), "non-empty image, got an array of shape \\(0, 5, 3\\)"),
    (np.zeros((5, 5, 2), np.uint8), "C in 1, 3, 4; got shape \\(5, 5, 2\\)"),
    (np.full((5, 5, 3), np.nan, np.float32), "NaN values \\(dtype float32\\)"),
    (np.zeros((5, 5, 3), np.float32), "got float32; convert floats"),
    (np.zeros((5, 5, 3), np.int64), "got int64"),
    ([[1, 2], [3, 4]], "numpy array, got list"),
])
def test_bad_images_are_named_in_the_error(bad, message):
    with pytest.raises(ValueError, match=message):
        enhance(bad)


def test_bad_step_names_and_settings():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown enhancement step 'blur'"):
        enhance(image, blur=True)
    with pytest.raises(ValueError, match="clahe: unknown setting\\(s\\) \\['clip'\\]"):
        enhance(image, clahe={"clip": 2})
    with pytest.raises(ValueError, match="not 'gray_world' or 'white_patch'"):
        enhance(image, white_balance="retinex")
    with pytest.raises(FileNotFoundError, match="not 'none', 'default' or an existing YAML"):
        Pipeline.from_spec("nowhere.yaml")


def test_training_and_validation_images_go_through_the_pipeline(tiny_data, tmp_path):
    """With enhance set, the images the trainer feeds the model are the enhanced ones."""
    from ultralytics import YOLO

    from distil.enhancement.dataset import EnhancedDetectionTrainer, EnhancedImageLoader

    pipeline = tmp_path / "bright.yaml"
    pipeline.write_text("steps:\n  - gamma: 3.0\n")  # strong, easy to see: lifts every mid-tone
    seen = {}

    def inspect(trainer):
        for name, loader in (("train", trainer.train_loader), ("val", trainer.test_loader)):
            dataset = loader.dataset
            assert isinstance(dataset.load_image, EnhancedImageLoader)
            raw, _, _ = dataset.load_image.load_image(0)
            enhanced, _, _ = dataset.load_image(0)
            seen[name] = (raw, enhanced)
        batch = next(iter(trainer.train_loader))
        seen["batch_mean"] = float(batch["img"].float().mean())
        raise SystemExit  # seen enough: no need to train

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_start", inspect)
    with pytest.raises(SystemExit):
        model.train(trainer=EnhancedDetectionTrainer, data=str(tiny_data), enhance=str(pipeline), epochs=1,
                    imgsz=64, batch=4, device="cpu", project=str(tmp_path), name="enh", plots=False, mosaic=0.0)
    for raw, enhanced in (seen["train"], seen["val"]):
        assert np.array_equal(enhanced, gamma(raw, gamma=3.0))
        assert enhanced.mean() > raw.mean()
    assert seen["batch_mean"] > 150  # the demo images average ~110-130 before enhancement


def test_a_bad_enhance_value_fails_before_data_is_read(tmp_path):
    from distil.enhancement.dataset import EnhancedDetectionTrainer

    with pytest.raises(FileNotFoundError, match="not 'none', 'default' or an existing YAML"):
        EnhancedDetectionTrainer(overrides={"model": "yolov8n.yaml", "data": str(tmp_path / "none.yaml"),
                                            "enhance": "nowhere.yaml"})


def test_fault_effects_table_measures_what_a_pipeline_does_per_fault():
    images = {fault: images_with(fault, 3) for fault in ("colour_cast", "underexposed", "low_contrast", "noise")}
    table = fault_effects(images, Pipeline.default()).set_index("fault")
    assert list(table.index) == list(images)
    assert table.loc[["colour_cast", "underexposed", "low_contrast"], "improved"].all()
    assert (table["clipped after %"] < 10).all()
    # gamma and CLAHE re-amplify what denoising removed: the table says so rather than hiding it
    assert not table.loc["noise", "improved"]
    assert fault_effects({"noise": images["noise"]}, lambda im: enhance(im, denoise=True))["improved"].all()

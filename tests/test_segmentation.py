"""Segmentation evaluation (UnNAS supp B.2): one-reduction network, ASPP, Cityscapes layout, mIoU."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_space
from PIL import Image
from torchvision.datasets import Cityscapes

from archsearch.cli import main
from archsearch.config import (
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    SegmentationDataConfig,
    TrainConfig,
    component,
    load_config,
)
from archsearch.data import build_dataset
from archsearch.data.cityscapes import class_names, train_id_table
from archsearch.data.segmentation import LIGHTING_EIGVAL
from archsearch.engine.export import load_model
from archsearch.models import create_family
from archsearch.models.cost import count_params
from archsearch.objectives import create_objective
from archsearch.objectives.segmentation import ASPP, upsample_logits
from archsearch.presets import PRESETS
from archsearch.spaces.darts.genotype import published_genotypes

# Label ids drawn by the generated scenes: road, sidewalk, building, vegetation, sky, car, and
# unlabeled (id 0, train id 255).
SCENE_IDS = (7, 8, 11, 21, 23, 26, 0)
COLOURS = {c.id: c.color for c in Cityscapes.classes if c.id >= 0}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Info:
    num_classes = 19
    in_channels = 3
    image_size = 33


def write_cityscapes(root: Path, counts=(("train", 8), ("val", 3)), size=(64, 128), noise=12.0, seed=0) -> Path:
    """Scenes of three horizontal bands, each split at one column into two classes, and a box;
    every label id painted in its Cityscapes colour plus noise, in torchvision's layout."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in counts:
        for i in range(n):
            city = ("aachen", "bochum")[i % 2]
            stem = f"{city}_{i:06d}_000019"
            ids = np.empty((h, w), np.uint8)
            cuts = np.sort(rng.integers(8, h - 8, size=2))
            col = rng.integers(w // 4, 3 * w // 4)
            for a, b in zip((0, *cuts), (*cuts, h)):
                ids[a:b, :col], ids[a:b, col:] = rng.choice(SCENE_IDS[:-1], size=2, replace=False)
            y, x = rng.integers(0, h - 16), rng.integers(0, w - 24)
            ids[y:y + 16, x:x + 24] = rng.choice(SCENE_IDS)
            rgb = np.array([COLOURS[k] for k in range(max(COLOURS) + 1)], np.float64)[ids]
            rgb = np.clip(rgb + rng.normal(0, noise, rgb.shape), 0, 255).astype(np.uint8)
            for folder, suffix, array in (("leftImg8bit", "leftImg8bit", rgb), ("gtFine", "gtFine_labelIds", ids)):
                d = root / folder / split / city
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(d / f"{stem}_{suffix}.png")
    return root


def _seg_net(c, layers, size, genotype="DARTS_V2", channels=16, rates=(6, 12, 18)):
    cfg = component(ObjectiveConfig, "segmentation", aspp_channels=channels, aspp_rates=list(rates))
    objective = create_objective(cfg, Info)
    model_cfg = component(ModelConfig, "darts-imagenet", init_channels=c, layers=layers, auxiliary=False, reductions=1)
    net = create_family("darts-imagenet").build(published_genotypes()[genotype], model_cfg, 3, size,
                                                objective.build_head)
    return net, objective


def test_label_ids_map_to_the_19_train_ids():
    table = train_id_table()
    assert [table[i].item() for i in (7, 8, 11, 21, 23, 26, 33)] == [0, 1, 2, 8, 10, 13, 18]
    assert [table[i].item() for i in (0, 1, 6, 9, 29, 255)] == [255] * 6  # unlabeled, parking, caravan ...
    assert sorted(t for t in table.tolist() if t != 255) == list(range(19))
    assert class_names()[:3] == ["road", "sidewalk", "building"] and len(class_names()) == 19


def test_segmentation_network_has_the_spec_size_and_one_reduction():
    # docs/methods/unnas.md §4.4: DARTS_V2 at width 82, 12 cells, one reduction, ASPP 256 / 6,12,18: 9.56M params
    with torch.device("meta"):
        net, _ = _seg_net(82, 12, 769, channels=256)
    assert round(count_params(net) / 1e6, 2) == 9.56
    assert net.reduction_cells == (4,)  # floor(12 / 3); the cell at floor(2 * 12 / 3) is a normal one


@pytest.mark.parametrize("size", [(65, 97), (64, 128), (33, 47)])
def test_aspp_output_upsampled_to_the_input_resolution(size):
    torch.manual_seed(0)
    net, objective = _seg_net(8, 3, 65)
    x = torch.randn(2, 3, *size)
    low = net.eval()(x)
    stride16 = tuple((s - 1) // 16 + 1 for s in size)  # four stride-2 stages, odd sides padded
    assert low.shape == (2, 19, *stride16)
    dense = upsample_logits(low, size)
    assert dense.shape == (2, 19, *size)
    if all((s - 1) % 16 == 0 for s in size):  # k*16+1 inputs: low-res pixels land on the grid exactly
        torch.testing.assert_close(dense[..., ::16, ::16], low)
    # ASPP itself keeps the feature size, also for rates larger than the map
    aspp = ASPP(24, 8, (6, 12, 18), 19).eval()
    assert aspp(torch.randn(2, 24, 5, 7)).shape == (2, 19, 5, 7)
    # the loss sees every labelled pixel and a gradient reaches the first stem
    net.train()
    y = torch.randint(0, 19, (2, *size))
    y[:, 0] = 255
    loss = objective.loss(net(x), y)
    loss.backward()
    assert torch.isfinite(loss) and net.stems[0][0].weight.grad.abs().sum() > 0


def _one_hot_logits(pred: list, classes: int) -> torch.Tensor:
    p = torch.tensor(pred)
    return torch.nn.functional.one_hot(p, classes).permute(0, 3, 1, 2).float()


def test_miou_accumulates_intersection_and_union_over_the_whole_set():
    class Four:
        num_classes = 4
    objective = create_objective(component(ObjectiveConfig, "segmentation"), Four)
    target_a = [[0, 0, 1], [1, 255, 2]]
    pred_a = [[0, 1, 1], [1, 3, 2]]  # class 3 only on an ignored pixel: it does not count
    target_b = [[0, 0, 0], [2, 2, 255]]
    pred_b = [[0, 0, 2], [2, 1, 0]]
    # by hand over both images (10 labelled pixels):
    # class 0: I 3, label 5, pred 3, U 5 -> 0.6; class 1: I 2, label 2, pred 4, U 4 -> 0.5;
    # class 2: I 2, label 3, pred 3, U 4 -> 0.5; class 3: absent from labels and predictions
    # (union 0) -> left out. mIoU = 1.6 / 3; pixel accuracy 7 / 10.
    sums = {}
    for t, p in ((target_a, pred_a), (target_b, pred_b)):
        for k, v in objective.metric_sums(_one_hot_logits([p], 4), torch.tensor([t])).items():
            sums[k] = sums.get(k, 0.0) + v
    assert sums["intersection_0"] == 3 and sums["union_0"] == 5 and sums["union_3"] == 0
    metrics = objective.reduce_metrics(sums)
    assert metrics["miou"] == pytest.approx(1.6 / 3) and metrics["pixel_acc"] == pytest.approx(0.7)
    # one batch of both images gives the same totals; the mean of per-image mIoUs would not
    both = objective.metrics(_one_hot_logits([pred_a, pred_b], 4), torch.tensor([target_a, target_b]))
    assert both["miou"] == pytest.approx(1.6 / 3)
    per_image = [objective.metrics(_one_hot_logits([p], 4), torch.tensor([t]))["miou"]
                 for t, p in ((target_a, pred_a), (target_b, pred_b))]
    assert abs(sum(per_image) / 2 - 1.6 / 3) > 1e-3
    # a class predicted on labelled pixels but absent from the labels has IoU 0 and counts
    m = objective.metrics(_one_hot_logits([[[0, 1], [0, 0]]], 4), torch.tensor([[[0, 0], [0, 0]]]))
    assert m["miou"] == pytest.approx((3 / 4 + 0) / 2)
    # only ignored pixels: no class has a union
    assert objective.metrics(_one_hot_logits([[[0]]], 4), torch.tensor([[[255]]]))["miou"] == 0.0


def _data_cfg(root, **seg):
    return DataConfig(name="cityscapes", root=str(root), image_size=33,
                      segmentation=SegmentationDataConfig(base_size=64, **seg))


def test_cityscapes_layout_loads_with_joint_transforms(tmp_path):
    root = write_cityscapes(tmp_path / "cs")
    val = build_dataset(_data_cfg(root), train=False, augment=False)
    assert len(val) == 3 and val.images == sorted(val.images)
    image, mask = val[0]
    assert image.shape == (3, 65, 129) and mask.shape == (65, 129) and mask.dtype == torch.uint8
    ids = torch.from_numpy(np.array(Image.open(val.targets[0][0])))
    assert torch.equal(mask[:64, :128], train_id_table()[ids.long()])
    assert (mask[64] == 255).all() and (mask[:, 128] == 255).all()  # padding to 16k+1 is ignored
    assert (image[:, 64] == 0).all() and (image[:, :, 128] == 0).all()
    raw = torch.from_numpy(np.array(Image.open(val.images[0]))).permute(2, 0, 1).float() / 255
    expected = (raw - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    torch.testing.assert_close(image[:, :64, :128], expected)

    # training crops: image and labels move together (noise-free scenes, no lighting), so the
    # de-normalised colour of a labelled pixel is the colour of its class
    root2 = write_cityscapes(tmp_path / "clean", noise=0.0)
    train = build_dataset(_data_cfg(root2, lighting=0.0), train=True, augment=True)
    colour_of = {c.train_id: c.color for c in Cityscapes.classes if 0 <= c.train_id < 255}
    torch.manual_seed(0)
    agree, total = 0, 0
    for i in range(16):
        image, mask = train[i % len(train)]
        assert image.shape == (3, 33, 33) and mask.shape == (33, 33)
        assert set(mask.unique().tolist()) <= set(range(19)) | {255}
        rgb = (image * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)) * 255
        for c in mask.unique().tolist():
            if c == 255:
                continue
            sel = mask == c
            err = (rgb[:, sel] - torch.tensor(colour_of[c], dtype=torch.float32).view(3, 1)).abs().amax(0)
            agree += int((err < 2).sum())
            total += int(sel.sum())
    assert agree / total > 0.9  # only pixels on class borders blend under bilinear resizing


def test_lighting_moves_colour_along_the_principal_components():
    from archsearch.data.segmentation import Lighting
    torch.manual_seed(0)
    img = torch.full((3, 4, 4), 0.5)
    out, _ = Lighting(0.1)(img, None)
    shift = out[:, 0, 0] - 0.5
    assert torch.allclose(out - 0.5, shift.view(3, 1, 1).expand(3, 4, 4))  # the same shift everywhere
    assert 0 < shift.abs().max() < 0.1 * 3 * max(LIGHTING_EIGVAL)


def test_train_cli_on_generated_cityscapes_reports_miou(tmp_path):
    root = write_cityscapes(tmp_path / "cs")
    out = tmp_path / "run"
    rc = main(["train", "train_cityscapes", f"data.root={root}", "data.image_size=33",
               "data.segmentation.base_size=64", "data.batch_size=4", "data.val_batch_size=2",
               "data.num_workers=0", "model.init_channels=8", "model.layers=3",
               "objective.aspp_channels=8", "objective.aspp_rates=[2,4]",
               "optim.epochs=2", "steps_per_epoch=2", "log_every=1",
               "--genotype", "DARTS_V2", "--out", str(out), "--no-progress"])
    assert rc == 0
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [0, 1]
    for e in epochs:
        assert 0.0 <= e["test_miou"] <= 1.0 and 0.0 <= e["train_miou"] <= 1.0 and e["test_loss"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["epoch"] in (0, 1) and "test_miou" in summary["best"]
    assert summary["test_correct"] is None and not (out / "test_correct.npz").exists()  # mIoU is set-level
    assert (out / "best.pt").is_file()

    # the engine's test mIoU is the whole-set mIoU of the final weights (model.pt), recomputed here
    model, _, _ = load_model(out)
    cfg = load_config(out / "config.yaml", schema=TrainConfig)
    val = build_dataset(cfg.data, train=False, augment=False)
    cm = np.zeros((19, 19), np.int64)
    with torch.no_grad():
        for image, mask in val:
            pred = upsample_logits(model(image[None]), mask.shape).argmax(1)[0]
            keep = mask != 255
            np.add.at(cm, (mask[keep].long().numpy(), pred[keep].numpy()), 1)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    miou = (inter[union > 0] / union[union > 0]).mean()
    assert summary["final"]["test_miou"] == pytest.approx(miou, abs=1e-9)


def test_search_supernet_with_one_reduction_and_the_seg_preset(tmp_path):
    space = tiny_space(reductions=1, layers=3)
    objective = create_objective(component(ObjectiveConfig, "segmentation"), Info)
    net = space.build_supernet(3, 32, objective.build_head)
    assert [c.reduction for c in net.cells] == [False, True, False]
    weights = {k: torch.softmax(torch.zeros(*s), -1) for k, s in space.arch_shapes().items()}
    assert net(torch.randn(2, 3, 32, 32), weights).shape == (2, 19, 16, 16)

    cfg = load_config(PRESETS / "darts_cityscapes_seg.yaml")
    assert (cfg.space.reductions, cfg.space.layers, cfg.objective.aspp_rates) == (1, 12, [6])
    root = write_cityscapes(tmp_path / "cs", counts=(("train", 8), ("val", 1)))
    rc = main(["search", "darts_cityscapes_seg", f"data.root={root}", "data.image_size=32",
               "data.segmentation.base_size=48", "data.batch_size=2", "data.num_workers=0",
               "space.init_channels=4", "space.layers=2", "objective.aspp_channels=8",
               "optim.epochs=1", "steps_per_epoch=1", "val_batches=1",
               "--out", str(tmp_path / "search"), "--no-progress"])
    assert rc == 0
    last = json.loads((tmp_path / "search" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= last["val_miou"] <= 1.0 and "genotype" in last


def test_factorized_reduce_pads_odd_maps_at_the_bottom_right():
    from archsearch.spaces.darts.ops import FactorizedReduce
    torch.manual_seed(0)
    fr = FactorizedReduce(3, 4).eval()
    x = torch.randn(1, 3, 9, 12)
    xr = torch.relu(x)
    padded = torch.nn.functional.pad(xr, (0, 0, 0, 1))  # one zero row at the bottom: 10 x 12
    expected = fr.bn(torch.cat([fr.conv_1(padded), fr.conv_2(padded[:, :, 1:, 1:])], dim=1))
    assert fr(x).shape == (1, 4, 5, 6)
    torch.testing.assert_close(fr(x), expected)
    even = torch.randn(1, 3, 8, 12)
    torch.testing.assert_close(fr(even), fr.bn(torch.cat([fr.conv_1(torch.relu(even)),
                                                          fr.conv_2(torch.relu(even)[:, :, 1:, 1:])], 1)))

"""Model unit tests: bounded rendering, gradient stopping, inference rule, viewer-safe outputs."""

from __future__ import annotations

import pytest
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.utils import colormaps
from tiny_models import CLASSES, forward, rays, tiny_model

from plift_ns import losses
from plift_ns.fields.panoptic_field import PanopticField, samples_at, trilinear_lookup
from plift_ns.models.fragments import merge_instance_fragments
from plift_ns.models.panoptic_lifting import PanopticLiftingModel


@pytest.mark.parametrize("threshold", [0.0, 1e-4])
def test_bounded_field_renders_a_distribution_summing_to_accumulation(threshold: float) -> None:
    model = tiny_model(head_weight_threshold=threshold)
    model.eval()
    out = forward(model, rays())
    acc = out["accumulation"][:, 0]
    assert acc.max() > 0.3, "test rays should hit some density"
    tol = 1e-5 if threshold == 0 else 32 * threshold  # dropped samples each carry < threshold weight
    assert torch.allclose(out["semantics"].sum(-1), acc, atol=tol)
    assert torch.allclose(out["instance"].sum(-1), acc, atol=tol)
    assert (out["semantics"] >= 0).all()


def test_unbounded_field_renders_logits() -> None:
    model = tiny_model(bounded_semantics=False, head_weight_threshold=0.0)
    model.eval()
    out = forward(model, rays())
    assert not torch.allclose(out["semantics"].sum(-1), out["accumulation"][:, 0], atol=1e-3)


def _density_grad_from_segmentation(stop: bool, **overrides) -> float:
    model = tiny_model(stop_head_gradients=stop, head_weight_threshold=0.0, **overrides)
    model.train()
    out = forward(model, rays())
    target = torch.zeros_like(out["semantics"])
    target[:, 3] = 1.0
    ones = torch.ones(len(target))
    loss = losses.semantic_loss(out["semantics"], target, ones) + losses.instance_loss(
        out["instance"][32:], torch.arange(32) % 3 + 1, ones[32:]
    )
    loss.backward()
    grads = [p.grad for p in model.field.density_encoding.parameters() if p.grad is not None]
    heads = [p.grad for p in model.field.semantic_mlp.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in heads), "the heads must still learn"
    colour = [p.grad for p in model.field.color_encoding.parameters()] + [p.grad for p in model.field.B.parameters()]
    assert all(g is None or g.abs().sum() == 0 for g in colour), "segmentation losses never move colour"
    return float(sum(g.abs().sum() for g in grads)) if grads else 0.0


@pytest.mark.parametrize("head_appearance", [False, True])
def test_gradient_stop_leaves_density_untouched_by_segmentation_losses(head_appearance: bool) -> None:
    assert _density_grad_from_segmentation(stop=True, head_appearance=head_appearance) == 0.0
    assert _density_grad_from_segmentation(stop=False, head_appearance=head_appearance) > 0.0


def test_heads_read_appearance_features_when_asked() -> None:
    plain, with_appearance = tiny_model(), tiny_model(head_appearance=True)
    positions = torch.rand(50, 3) * 2 - 1
    assert plain.field.head_input(positions).shape[-1] == 3
    features = with_appearance.field.head_input(positions)
    assert features.shape[-1] == 3 + with_appearance.config.appearance_dim
    with torch.no_grad():
        with_appearance.field.color_encoding.plane_coef.add_(0.5)  # the colour grid changes → the heads' input changes
    assert not torch.allclose(with_appearance.field.head_input(positions)[:, 3:], features[:, 3:])


def test_training_renders_instances_only_for_ri_rays() -> None:
    model = tiny_model(head_weight_threshold=0.0)
    model.train()
    out = forward(model, rays(instance_from=40))
    assert torch.all(out["instance"][:40] == 0)
    assert torch.allclose(out["instance"][40:].sum(-1), out["accumulation"][40:, 0].detach(), atol=1e-5)


def test_inference_rule() -> None:
    model = tiny_model()
    chair, wall = CLASSES.index("chair"), CLASSES.index("wall")
    semantics = torch.zeros((3, CLASSES.num_classes))
    semantics[0, chair] = semantics[1, wall] = semantics[2, chair] = 1.0
    instance = torch.zeros((3, 6))
    instance[0, 2] = instance[1, 4] = instance[2, 5] = 1.0
    sem, inst = model.panoptic_labels(semantics, instance)
    assert sem.tolist() == [chair, wall, chair]
    assert inst.tolist() == [3, 0, 6], "thing → surrogate id + 1; stuff → 0"


def _merge_fragments_by_hand(sem, inst, probs, thing, min_pixels):
    """Reference for merge_instance_fragments: pixel by pixel, in plain Python."""
    sem, inst, probs = sem.flatten().tolist(), inst.flatten().tolist(), probs.reshape(len(sem.flatten()), -1).tolist()
    out = list(inst)
    for c in set(sem):
        if not thing[c]:
            continue
        count = {}
        for s, i in zip(sem, inst):
            if s == c:
                count[i] = count.get(i, 0) + 1
        kept = [i for i, n in count.items() if n >= min_pixels]
        for k, (s, i) in enumerate(zip(sem, inst)):
            if s == c and kept and i not in kept:
                out[k] = max(kept, key=lambda j: (probs[k][j - 1], -j))
    return out


def test_instance_fragments_merge_into_the_most_probable_kept_id_of_their_class() -> None:
    model = tiny_model()
    chair, sofa, wall = CLASSES.index("chair"), CLASSES.index("sofa"), CLASSES.index("wall")
    assert model.thing_mask[chair] and model.thing_mask[sofa] and not model.thing_mask[wall]
    sem = torch.full((6, 10), wall)
    sem[:, :4] = chair  # 24 chair pixels: ids 1 (12 px), 2 (10 px), 3 (a 2-px sliver)
    probs = torch.full((6, 10, 6), 0.01)
    probs[:, :2, 0] = probs[:5, 2:4, 1] = 0.9
    probs[5, 2:4, 2] = 0.5
    probs[5, 2, 0], probs[5, 3, 1] = 0.3, 0.4  # the sliver's runners-up: id 1 at one pixel, id 2 at the other
    sem[0, 8] = chair  # one more pixel of chair far away, its id 1 (kept)
    probs[0, 8, 0] = 0.9
    sem[5, 9] = sofa  # a thing class with a single small id: nothing to merge into, kept
    probs[5, 9, 4] = 0.9
    model.config.min_instance_fraction = 3.5 / 60
    got, ids = model.panoptic_labels(torch.nn.functional.one_hot(sem, CLASSES.num_classes).float(), probs)
    assert torch.equal(got, sem)
    assert ids[5, 2].item() == 1 and ids[5, 3].item() == 2, "the sliver goes to its most probable kept id"
    assert ids[5, 9].item() == 5 and ids[0, 8].item() == 1 and ids[2, 6].item() == 0
    assert (ids[:, :2] == 1).all() and (ids[:5, 2:4] == 2).all()
    model.config.min_instance_fraction = 0.0
    assert model.panoptic_labels(torch.nn.functional.one_hot(sem, CLASSES.num_classes).float(), probs)[1][5, 2] == 3
    # against the pixel-by-pixel reference on random frames, thresholds from nothing to everything merged
    generator = torch.Generator().manual_seed(0)
    for trial in range(12):
        sem = torch.randint(CLASSES.num_classes, (7, 9), generator=generator)
        probs = torch.rand((7, 9, 6), generator=generator)
        inst = torch.where(model.thing_mask[sem], probs.argmax(-1) + 1, torch.zeros_like(sem))
        min_pixels = float(trial % 4)
        expected = _merge_fragments_by_hand(sem, inst, probs, model.thing_mask.tolist(), min_pixels)
        assert merge_instance_fragments(sem, inst, probs, model.thing_mask, min_pixels).flatten().tolist() == expected


def test_camera_outputs_are_viewer_safe_float_rgb() -> None:
    model = tiny_model()
    model.eval()
    camera = Cameras(
        camera_to_worlds=torch.eye(4)[None, :3], fx=20.0, fy=20.0, cx=8.0, cy=6.0, width=16, height=12,
    )
    outputs = model.get_outputs_for_camera(camera)
    for name in ("rgb", "semantics_colormap", "instance_colormap", "panoptic"):
        assert outputs[name].shape == (12, 16, 3) and outputs[name].dtype == torch.float32
        assert outputs[name].min() >= 0 and outputs[name].max() <= 1
    for name, output in outputs.items():
        image = colormaps.apply_colormap(output)  # what ns-viewer and ns-render do with every output
        assert image.shape == (12, 16, 3) and torch.is_floating_point(image), name
    # one 3D instance has one colour: equal (class, id) pairs map to equal colours
    sem, inst = model.panoptic_labels(outputs["semantics"], outputs["instance"])
    colors = outputs["instance_colormap"].reshape(-1, 3)
    keys = (sem * 100 + inst).reshape(-1)
    for key in keys.unique():
        assert torch.unique(colors[keys == key], dim=0).shape[0] == 1


def test_loss_dict_schedule() -> None:
    model = tiny_model(instance_loss_start_step=5)
    model.train()
    bundle = rays(instance_from=32)
    out = forward(model, bundle)
    n = 64
    batch = {
        "image": torch.rand(n, 3), "semantics": torch.randint(0, 21, (n,)), "instance": torch.randint(0, 4, (n,)),
        "confidence": torch.ones(n), "num_rays_semantic": 32,
    }
    model.step = 0
    assert set(model.get_loss_dict(out, batch)) == {"rgb_loss", "l1_reg", "semantic_loss"}
    model.step = 5
    assert {"instance_loss", "consistency_loss"} <= set(model.get_loss_dict(out, batch))
    model.config.consistency_loss_start_step = 8
    assert "consistency_loss" not in model.get_loss_dict(out, batch)
    assert "instance_loss" in model.get_loss_dict(out, batch)
    model.step = 8
    assert "consistency_loss" in model.get_loss_dict(out, batch)
    model.config.use_segment_consistency = False
    assert "consistency_loss" not in model.get_loss_dict(out, batch)


def test_consistency_start_before_instance_start_is_refused() -> None:
    """L_con reads R_I rays, which only exist from the instance-loss start: an earlier L_con start cannot apply."""
    from plift_ns.errors import PliftConfigError

    with pytest.raises(PliftConfigError, match="consistency-loss-start-step 3 is earlier"):
        tiny_model(instance_loss_start_step=5, consistency_loss_start_step=3)
    assert tiny_model(instance_loss_start_step=5, consistency_loss_start_step=5) is not None
    # without segment consistency the start step is irrelevant
    assert tiny_model(instance_loss_start_step=5, consistency_loss_start_step=3, use_segment_consistency=False)


@pytest.mark.parametrize("head_appearance", [False, True])
def test_shared_sample_outputs_equal_separate_field_calls(head_appearance: bool) -> None:
    """The fused per-sample pass gives the values (and gradients) of nerfstudio's get_outputs + the two heads."""
    model = tiny_model(head_appearance=head_appearance, head_grid_resolution=8, head_grid_components=4)
    field = model.field
    samples = model.sampler_uniform(model.collider(rays(n=16)))[:, :5].flatten()
    rows = torch.arange(len(samples)) % 3 == 0
    fused = field.sample_outputs(samples, rows)
    positions = samples.frustums.get_positions()
    reference = {
        "rgb": field.get_outputs(samples),  # nerfstudio's TensoRFField.get_outputs
        "semantics": field.semantic_logits(positions),
        "instance": field.instance_logits(positions[rows]),
    }
    for key, value in reference.items():
        assert fused[key].shape == value.shape, key
        assert torch.allclose(fused[key], value, atol=1e-6), key
    grads = [torch.autograd.grad(out[k].square().sum(), field.color_encoding.plane_coef, allow_unused=True)[0]
             for out in (fused, reference) for k in ("rgb",)]
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_deprecated_flag_names_still_apply(capsys) -> None:
    """Old config.yml files and command lines name the flags by their old names for one more release."""
    model = tiny_model(stop_semantic_gradients=False, use_tta_confidence=False)
    assert model.config.stop_head_gradients is False and model.config.use_label_probabilities is False
    assert model.config.stop_semantic_gradients is None
    out = capsys.readouterr().out
    assert "stop-semantic-gradients is deprecated" in out and "use-label-probabilities" in out


def test_sh_colour_matches_nerfstudio_tensorf_field() -> None:
    """With ``use_sh`` the colour decoder is TensoRF-SH: same output as nerfstudio's own field with the same weights."""
    from nerfstudio.field_components.encodings import TensorVMEncoding
    from nerfstudio.fields.tensorf_field import TensoRFField

    from plift_ns.fields.panoptic_field import PanopticField, samples_at

    torch.manual_seed(0)
    aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    ours = PanopticField(aabb, 3, 2, resolution=16, num_den_components=2, num_color_components=4, use_sh=True)
    reference = TensoRFField(
        aabb,
        density_encoding=TensorVMEncoding(resolution=16, num_components=2),
        color_encoding=TensorVMEncoding(resolution=16, num_components=4),
        use_sh=True,
        sh_levels=3,
    )
    shared = {k: v for k, v in ours.state_dict().items() if k.split(".")[0] in ("density_encoding", "color_encoding", "B")}
    reference.load_state_dict(shared, strict=False)
    directions = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    samples = samples_at(torch.rand(50, 3) * 2 - 1, directions)
    expected = reference.get_outputs(samples)
    got = ours.sample_outputs(samples.reshape((-1,)))["rgb"]
    assert torch.allclose(got, expected.reshape(-1, 3), atol=1e-6)


def test_softplus_density_starts_empty_and_follows_the_formula() -> None:
    """``softplus``: density = scale × softplus(sum of VM components + shift); near zero at initialisation."""
    from plift_ns.fields.panoptic_field import PanopticField, samples_at

    torch.manual_seed(0)
    aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    field = PanopticField(aabb, 3, 2, resolution=16, num_den_components=2, num_color_components=4,
                          density_activation="softplus", density_shift=-10.0, density_scale=25.0)
    positions = torch.rand(200, 3) * 2 - 1
    density = field.get_density(samples_at(positions)).reshape(-1)
    summed = field.density_encoding(positions).sum(dim=-1)
    expected = 25.0 * torch.log1p(torch.exp(summed - 10.0))
    assert torch.allclose(density, expected, rtol=1e-5)
    assert float(density.max()) < 0.01  # 1% opacity needs density × step ≈ 0.01: far more than this over a short ray
    with pytest.raises(ValueError, match="density_activation"):
        PanopticField(aabb, 3, 2, resolution=16, density_activation="exp")


def test_distortion_loss_switch_pulls_weight_together() -> None:
    """``distortion_loss_mult`` > 0 adds mip-NeRF 360's distortion loss of the fine weights; one gradient step on it
    alone makes each ray's weight more compact (its loss smaller), and it is absent when the weight is 0."""
    model = tiny_model(distortion_loss_mult=1.0)
    model.train()
    bundle = rays()
    n = 64
    batch = {"image": torch.rand(n, 3), "semantics": torch.randint(0, 21, (n,)), "confidence": torch.ones(n),
             "instance": torch.zeros(n, dtype=torch.long), "num_rays_semantic": n}
    torch.manual_seed(3)  # the samplers jitter in training: the same samples before and after the step
    before = model.get_loss_dict(forward(model, bundle), batch)["distortion_loss"]
    assert float(before) > 0
    params = list(model.field.density_encoding.parameters())
    grads = torch.autograd.grad(before, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= 1e-2 * g / (g.norm() + 1e-12)
    torch.manual_seed(3)
    after = model.get_loss_dict(forward(model, bundle), batch)["distortion_loss"]
    assert float(after) < float(before)
    model.config.distortion_loss_mult = 0.0
    assert "distortion_loss" not in model.get_loss_dict(forward(model, bundle), batch)


@pytest.mark.parametrize("kind", ["ds_nerf", "urf"])
def test_depth_loss_moves_the_weight_to_the_measured_depth(kind: str) -> None:
    """``depth_loss_mult`` > 0 adds nerfstudio's depth loss where the batch has depth (z-depth × the ray's direction
    norm = distance along the ray); a few gradient steps on it alone bring the rendered depth closer to the target;
    no depth in the batch (a scene without depth maps) or weight 0: no depth loss."""
    model = tiny_model(depth_loss_mult=1.0, depth_loss_type=kind, depth_sigma=0.05)
    model.train()
    bundle = rays()
    n = 64
    bundle.metadata["directions_norm"] = torch.full((n, 1), 1.25)
    target = torch.full((n, 1), 0.4)  # z-depth; along the ray: 0.5
    batch = {"image": torch.rand(n, 3), "semantics": torch.randint(0, 21, (n,)), "confidence": torch.ones(n),
             "instance": torch.zeros(n, dtype=torch.long), "num_rays_semantic": n, "depth": target}
    params = list(model.field.density_encoding.parameters())
    optimizer = torch.optim.Adam(params, lr=0.05)

    def error() -> float:
        with torch.no_grad():
            torch.manual_seed(3)
            out = forward(model, bundle)
        hit = out["accumulation"][:, 0] > 0.5
        return float((out["depth"][hit] / out["accumulation"][hit] - 0.5).abs().mean())

    before = error()
    for _ in range(20):
        torch.manual_seed(3)
        loss = model.get_loss_dict(forward(model, bundle), batch)["depth_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert error() < 0.7 * before
    torch.manual_seed(3)
    out = forward(model, bundle)
    assert "depth_loss" not in model.get_loss_dict(out, {k: v for k, v in batch.items() if k != "depth"})
    model.config.depth_loss_mult = 0.0
    assert "depth_loss" not in model.get_loss_dict(forward(model, bundle), batch)


def test_quantile_samples_on_a_hand_computed_ray() -> None:
    """Weights (0, .6, .2, 0), opacity .8: the normalised CDF is (0, .75, 1, 1); the 4 quantiles .125, .375, .625 fall
    on sample 1 and .875 on sample 2, each carrying .8 / 4; a ray without weight carries nothing."""
    weights = torch.tensor([[0.0, 0.6, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0]])[..., None]
    index, share = PanopticLiftingModel._quantile_samples(weights, 4)
    assert index[0].tolist() == [1, 1, 1, 2]
    assert torch.allclose(share, torch.tensor([[0.2], [0.0]]))
    index, share = PanopticLiftingModel._quantile_samples(weights, 2)  # quantiles .25, .75: both on sample 1
    assert index[0].tolist() == [1, 1] and torch.allclose(share[0], torch.tensor([0.4]))


def test_render_shading_samples_only_when_rendering() -> None:
    """Rendering with a few quantile points per ray keeps depth and opacity exact, keeps every class distribution
    summing to the opacity and stays close to the full render; training ignores the option."""
    full_model = tiny_model(head_weight_threshold=0.0)
    few_model = tiny_model(head_weight_threshold=0.0, render_shading_samples=4)
    bundle = rays()
    for model in (full_model, few_model):
        model.eval()
    with torch.no_grad():
        full, few = forward(full_model, bundle), forward(few_model, bundle)
    acc = full["accumulation"][:, 0]
    assert acc.max() > 0.3
    assert torch.equal(full["depth"], few["depth"]) and torch.equal(full["accumulation"], few["accumulation"])
    assert torch.allclose(few["semantics"].sum(-1), acc, atol=1e-5)
    assert not torch.equal(full["rgb"], few["rgb"])
    assert (full["rgb"] - few["rgb"]).abs().max() < 0.1
    for model in (full_model, few_model):
        model.train()
    torch.manual_seed(5)
    trained_full = forward(full_model, bundle)
    torch.manual_seed(5)
    trained_few = forward(few_model, bundle)
    assert torch.equal(trained_full["rgb"], trained_few["rgb"])


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_density_volume_equals_the_vm_density_everywhere(activation: str) -> None:
    """One trilinear lookup in the summed volume reproduces nerfstudio's six-lookup VM evaluation, inside the box, on
    its faces and just outside it (zero padding)."""
    torch.manual_seed(3)
    box = torch.tensor([[-1.0, -2.0, -1.5], [2.0, 1.0, 1.5]])
    field = PanopticField(box, num_classes=5, num_instances=4, resolution=13, num_den_components=3,
                          density_activation=activation)
    with torch.no_grad():
        field.density_encoding.plane_coef.normal_()
        field.density_encoding.line_coef.normal_()
    field.train()  # the reference: per-sample VM evaluation
    positions = torch.rand(2000, 3) * 3.4 - torch.tensor([1.2, 2.2, 1.7])
    positions[:50] = box[0] + torch.rand(50, 3) * (box[1] - box[0])
    positions[:50, 0] = box[1, 0]  # on a face
    reference = field.get_density(samples_at(positions))[:, 0, 0]
    looked_up = field.density_from_volume(field.density_volume(), positions)[:, 0]
    assert reference.abs().max() > 1e-3
    assert torch.allclose(looked_up, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_trilinear_lookup_split_per_thread_returns_the_single_batch_values_in_order(threads: int) -> None:
    """The per-thread split of the 3-D lookup (padding the last batch) gives every point its own value, in order."""
    torch.manual_seed(4)
    volume = torch.randn(1, 3, 5, 6, 7)
    points = torch.rand(1001, 3) * 2.2 - 1.1  # odd count; some outside the box (zero padding)
    reference = torch.nn.functional.grid_sample(volume, points.reshape(1, -1, 1, 1, 3), align_corners=True)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        values = trilinear_lookup(volume, points)
    finally:
        torch.set_num_threads(previous)
    assert values.shape == (3, 1001)
    assert torch.equal(values, reference.reshape(3, 1001))


def test_rendering_through_the_density_volume_matches_per_sample_density_and_follows_the_parameters() -> None:
    """Same maps with and without the volume; after an in-place change of the density grid (an optimiser step) and
    after upsampling, the volume is rebuilt, so the renders still agree."""
    bundle = rays()
    plain, fast = tiny_model(render_density_volume=False), tiny_model(render_density_volume=True)

    def both() -> dict:
        for model in (plain, fast):
            model.eval()
        with torch.no_grad():
            a, b = forward(plain, bundle), forward(fast, bundle)
        for key in ("rgb", "depth", "accumulation", "semantics", "instance"):
            assert torch.allclose(a[key], b[key], atol=1e-4), key
        assert fast.field._volume is not None and plain.field._volume is None, "only the fast model renders through the volume"
        return a

    first = both()
    for model in (plain, fast):
        with torch.no_grad():
            model.field.density_encoding.plane_coef.mul_(0.3)
    second = both()
    assert not torch.allclose(first["depth"], second["depth"], atol=1e-3), "the density change moved the depth"
    for model in (plain, fast):
        model.field.upsample_grids(20)
    both()

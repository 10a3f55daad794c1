"""Model registry: shapes, exact parameter counts, errors, seeded init, piecewise linearity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, hessian, vmap

from lltax.models import MODELS, PIECEWISE_LINEAR_MODELS, build_model, count_parameters, is_piecewise_linear

# Tiny per-sample shapes each model takes (batch dimension excluded).
SMALL_SHAPES = {"resnet18": (3, 8, 8), "resnet1d": (1, 12), "vgg11": (3, 8, 8), "mlp": (1, 12)}

# Models of image and 1D inputs; the transformer takes token pairs (tests/test_seq2seq.py).
ARRAY_MODELS = sorted(name for name in MODELS if name != "transformer")


def small_shape(name: str) -> tuple[int, ...]:
    """A small input of the model's family (resnet1d_20_noshort is a resnet1d)."""
    return SMALL_SHAPES["resnet1d" if name.startswith("resnet1d") else name]


def parameter_formula(name: str, k: int, in_channels: int, num_classes: int, num_features: int = 0) -> int:
    """Parameter counts derived by hand from the layer lists (c = input channels).

    resnet18: conv weights per stage in k^2: 4 * 9 = 36; 9 * (2 + 3 * 4) + 2 (1x1 shortcut) = 128;
    9 * (8 + 3 * 16) + 8 = 512; 9 * (32 + 3 * 64) + 32 = 2048; total 2724 k^2, plus the stem
    9 c k. BatchNorm: 2 per channel, channels k + 4 k + 5 * 2k + 5 * 4k + 5 * 8k = 75 k.
    Head 8 k * classes + classes.
    resnet1d: 3-wide convs, one block per stage: 3 * 2 = 6; 3 * (2 + 4) + 2 = 20;
    3 * (8 + 16) + 8 = 80; total 106 k^2, stem 3 c k; BatchNorm channels k + 2k + 3 * 2k +
    3 * 4k = 21 k. Head 4 k * classes + classes.
    vgg11: 3x3 convs 9 * (c k + 2 k^2 + 8 k^2 + 16 k^2 + 32 k^2 + 3 * 64 k^2) = 9 c k + 2250 k^2;
    BatchNorm channels (1 + 2 + 4 + 4 + 4 * 8) k = 43 k. Head 8 k * classes + classes.
    mlp: two hidden layers: (d + 1) k + (k + 1) k + (k + 1) classes, d = prod(input_shape).
    """
    if name == "resnet18":
        return 2724 * k**2 + (150 + 9 * in_channels + 8 * num_classes) * k + num_classes
    if name == "resnet1d":
        return 106 * k**2 + (42 + 3 * in_channels + 4 * num_classes) * k + num_classes
    if name.startswith("resnet1d_"):
        # n blocks per stage: stage convs 6n, 20 + 24(n - 1), 80 + 96(n - 1) k^2, of which 2 + 8
        # are the projection shortcuts; BatchNorm channels k + 14 n k, + 6 k in the shortcuts.
        depth, shortcuts = int(name.split("_")[1]), not name.endswith("_noshort")
        n = (depth - 2) // 6
        conv = 126 * n - 20 - (0 if shortcuts else 10)
        batchnorm = 2 * (1 + 14 * n + (6 if shortcuts else 0))
        return conv * k**2 + (batchnorm + 3 * in_channels + 4 * num_classes) * k + num_classes
    if name == "vgg11":
        return 2250 * k**2 + (86 + 9 * in_channels + 8 * num_classes) * k + num_classes
    if name == "mlp":
        return (num_features + 1) * k + (k + 1) * k + (k + 1) * num_classes
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name, input_shape",
    [
        ("resnet18", (3, 32, 32)),
        ("resnet18", (1, 28, 28)),
        ("resnet1d", (1, 40)),
        ("resnet1d", (2, 17)),
        ("vgg11", (3, 32, 32)),
        ("vgg11", (1, 28, 28)),
        ("mlp", (1, 40)),
        ("mlp", (3, 32, 32)),
        ("mlp", (7,)),
    ],
)
def test_output_shape_in_train_and_eval_mode(name, input_shape):
    torch.manual_seed(0)
    model = build_model(name, 2, 7, input_shape)
    inputs = torch.randn(3, *input_shape)
    for training in (True, False):
        model.train(training)
        outputs = model(inputs)
        assert outputs.shape == (3, 7)
        assert torch.isfinite(outputs).all()


def test_resnet18_has_the_reference_parameter_count():
    # Yang et al.'s (and kuangliu/pytorch-cifar's) ResNet18 on CIFAR-10.
    assert count_parameters(build_model("resnet18", 64, 10, (3, 32, 32))) == 11_173_962


@pytest.mark.parametrize("name", ARRAY_MODELS)
@pytest.mark.parametrize("width, in_channels, num_classes", [(1, 3, 10), (2, 1, 10), (3, 3, 100), (5, 2, 7)])
def test_parameter_count_matches_formula(name, width, in_channels, num_classes):
    input_shape = (in_channels, 40) if name.startswith("resnet1d") else (in_channels, 32, 32)
    model = build_model(name, width, num_classes, input_shape)
    expected = parameter_formula(name, width, in_channels, num_classes, math.prod(input_shape))
    assert count_parameters(model) == expected


def test_vgg11_at_width_64_has_standard_widths():
    model = build_model("vgg11", 64, 10, (3, 32, 32))
    conv_channels = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert conv_channels == [64, 128, 256, 256, 512, 512, 512, 512]
    assert count_parameters(model) == parameter_formula("vgg11", 64, 3, 10) == 9_228_362


@pytest.mark.parametrize("name", ["resnet18", "resnet1d", "vgg11"])
def test_conv_weights_beyond_the_stem_scale_with_width_squared(name):
    def inner_conv_weights(width: int) -> int:
        model = build_model(name, width, 10, small_shape(name))
        convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
        return sum(m.weight.numel() for m in convs[1:])  # convs[0] reads the input channels

    for width in (1, 3, 8):
        assert inner_conv_weights(2 * width) == 4 * inner_conv_weights(width)


def test_resnet18_state_dict_uses_the_reference_layout():
    # Same names as models/resnet_width.py of nsfzyzz/loss_landscape_taxonomy, so its checkpoints load.
    keys = set(build_model("resnet18", 2, 10, (3, 32, 32)).state_dict())
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.1.conv2.weight",
        "layer2.0.shortcut.0.weight",
        "layer2.0.shortcut.1.num_batches_tracked",
        "layer4.1.bn2.bias",
        "linear.weight",
        "linear.bias",
    ):
        assert key in keys
    assert "layer1.0.shortcut.0.weight" not in keys  # identity shortcut: same channels, stride 1
    assert not any(key.startswith("layer5") for key in keys)


def test_unknown_model_name_lists_the_models():
    with pytest.raises(ValueError, match="unknown model 'resnet50'.*mlp.*resnet18.*resnet1d.*vgg11"):
        build_model("resnet50", 4, 10, (3, 32, 32))
    with pytest.raises(ValueError, match="unknown model"):
        is_piecewise_linear("resnet50")


@pytest.mark.parametrize("width", [0, -3, 2.5, True, "8"])
def test_invalid_width_is_rejected(width):
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        build_model("mlp", width, 10, (1, 40))


def test_invalid_num_classes_and_input_shapes_are_rejected():
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        build_model("mlp", 4, 0, (1, 40))
    with pytest.raises(ValueError, match="input_shape"):
        build_model("mlp", 4, 10, ())
    with pytest.raises(ValueError, match="input_shape"):
        build_model("mlp", 4, 10, (1, 0))
    for name in ("resnet18", "vgg11"):
        with pytest.raises(ValueError, match=rf"{name} takes images .* got input_shape \(1, 40\)"):
            build_model(name, 4, 10, (1, 40))
    with pytest.raises(ValueError, match=r"resnet1d takes sequences .* got input_shape \(3, 32, 32\)"):
        build_model("resnet1d", 4, 10, (3, 32, 32))


@pytest.mark.parametrize("name", ARRAY_MODELS)
def test_initialization_is_determined_by_the_seed(name):
    def state(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build_model(name, 3, 10, small_shape(name)).state_dict()

    first, again, other = state(0), state(0), state(1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first if first[key].is_floating_point())


# ---------------------------------------------------------------------------------------------
# Piecewise linearity: the property the exact Hessian trace (Hessian diagonal = GGN diagonal)
# relies on. Within a ReLU region the outputs are linear in each parameter tensor on its own,
# so the second derivative of the outputs along any direction in one tensor is zero.


def _randomize_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial eval-mode BatchNorm: random running statistics and affine parameters."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(0.3 * torch.randn(module.num_features, generator=generator, dtype=torch.float64))
                module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=generator, dtype=torch.float64))
                module.weight.copy_(1 + 0.3 * torch.randn(module.num_features, generator=generator, dtype=torch.float64))
                module.bias.copy_(0.3 * torch.randn(module.num_features, generator=generator, dtype=torch.float64))


def _second_derivatives_along_tensors(model: nn.Module, inputs: torch.Tensor, generator: torch.Generator) -> tuple[float, float]:
    """Hessian of h(t) = r . model(theta + sum_i t_i v_i) at t = 0: one random direction v_i per
    parameter tensor, a random readout r. Returns (max |diagonal|, max |entry|), both relative to
    1 + max |gradient|. A zero diagonal means no tensor enters the outputs non-linearly."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    directions = {name: torch.randn(p.shape, generator=generator, dtype=p.dtype) for name, p in params.items()}
    readout = torch.randn(len(inputs), model(inputs).shape[1], generator=generator, dtype=inputs.dtype)

    def readout_of(steps: torch.Tensor) -> torch.Tensor:
        moved = {name: p + step * directions[name] for step, (name, p) in zip(steps, params.items())}
        return (functional_call(model, (moved, buffers), (inputs,)) * readout).sum()

    origin = torch.zeros(len(params), dtype=inputs.dtype)
    scale = 1.0 + grad(readout_of)(origin).abs().max().item()
    second = hessian(readout_of)(origin)
    return second.diagonal().abs().max().item() / scale, second.abs().max().item() / scale


@pytest.mark.parametrize("name", sorted(PIECEWISE_LINEAR_MODELS))
def test_piecewise_linear_models_have_zero_second_derivative_per_parameter(name):
    assert is_piecewise_linear(name)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model(name, 2, 5, small_shape(name)).double()
    _randomize_batchnorm(model, generator)
    model.eval()
    inputs = torch.randn(4, *small_shape(name), generator=generator, dtype=torch.float64)
    diagonal, largest = _second_derivatives_along_tensors(model, inputs, generator)
    assert diagonal < 1e-12
    assert largest > 1e-3  # tensors do interact (off-diagonal), so the Hessian was really computed


def test_second_derivative_check_detects_smooth_activations_and_train_mode_batchnorm():
    # The check above can fail: tanh instead of ReLU, or BatchNorm with batch statistics.
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    smooth = build_model("mlp", 3, 5, (1, 12)).double()
    smooth[2] = nn.Tanh()
    inputs = torch.randn(4, 1, 12, generator=generator, dtype=torch.float64)
    assert _second_derivatives_along_tensors(smooth.eval(), inputs, generator)[0] > 1e-3

    resnet = build_model("resnet1d", 2, 5, (1, 12)).double().train()
    for module in resnet.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.track_running_stats = False  # batch statistics, no buffer updates inside torch.func
    assert _second_derivatives_along_tensors(resnet, inputs, generator)[0] > 1e-3


@pytest.mark.parametrize("name", ARRAY_MODELS)
def test_per_sample_gradients_with_vmap_match_autograd(name):
    # The Hessian metric takes per-sample gradients with torch.func in eval mode; BatchNorm and
    # in-place ops must not get in the way.
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = build_model(name, 2, 5, small_shape(name)).double().eval()
    inputs = torch.randn(3, *small_shape(name), generator=generator, dtype=torch.float64)
    targets = torch.tensor([0, 3, 4])
    params = {key: p.detach() for key, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def sample_loss(parameters, x, y):
        logits = functional_call(model, (parameters, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(logits, y.unsqueeze(0))

    batched = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, inputs, targets)
    for index in range(len(inputs)):
        model.zero_grad()
        F.cross_entropy(model(inputs[index : index + 1]), targets[index : index + 1]).backward()
        for key, p in model.named_parameters():
            torch.testing.assert_close(batched[key][index], p.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, shape", [("resnet18", (3, 32, 32)), ("vgg11", (3, 32, 32)), ("resnet1d", (1, 40)), ("mlp", (1, 40))])
def test_config_parameter_estimate_matches_the_built_models(name, shape):
    """lltax.config.schema refuses absurd widths from this estimate before any job; it must be right."""
    from lltax.runtime.memory import parameter_estimate

    for width in (4, 16):
        actual = sum(p.numel() for p in build_model(name, width, 10, shape).parameters())
        assert abs(parameter_estimate(name, width, shape) - actual) <= 0.03 * actual


# Builders outside lltax, named in a config as "test_models:<function>" (this module is importable
# under that name while pytest runs, as any installed package would be for a job).
def tiny_gelu_net(width, num_classes, input_shape):
    """Not piecewise linear (GELU), and says nothing about it."""
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), width), nn.GELU(), nn.Linear(width, num_classes))


def tiny_relu_net(width, num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), width), nn.ReLU(), nn.Linear(width, num_classes))


tiny_relu_net.piecewise_linear = True  # asserted by its author


def not_a_model(width, num_classes, input_shape):
    return "a string"


def raising_net(width, num_classes, input_shape):
    raise RuntimeError("my builder is broken")


def thirteen_logits_net(width, num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 13))


def wrong_input_net(width, num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(7, num_classes))


def test_an_own_builder_that_fails_is_named_with_the_shapes_before_training():
    with pytest.raises(
        ValueError,
        match=r"builder 'test_models:raising_net' raised RuntimeError for width 4, 10 classes, input shape \(1, 40\): my builder",
    ):
        build_model("test_models:raising_net", 4, 10, (1, 40))
    with pytest.raises(ValueError, match=r"maps inputs of shape \(2, \*\(1, 40\)\) to \(2, 13\), not to \(2, 10\) logits"):
        build_model("test_models:thirteen_logits_net", 4, 10, (1, 40))
    with pytest.raises(ValueError, match=r"fails on inputs of shape \(batch, \*\(1, 40\)\)"):
        build_model("test_models:wrong_input_net", 4, 10, (1, 40))


def test_own_model_by_import_path_without_editing_lltax():
    from lltax.config.schema import ConfigError, validate_config
    from lltax.metrics.hessian import hessian_metrics, resolve_trace_method

    torch.manual_seed(0)
    model = build_model("test_models:tiny_gelu_net", 6, 3, (1, 8))
    assert sum(p.numel() for p in model.parameters()) == 8 * 6 + 6 + 6 * 3 + 3
    assert not is_piecewise_linear("test_models:tiny_gelu_net")  # cannot be verified: no exact trace
    assert is_piecewise_linear("test_models:tiny_relu_net")
    assert resolve_trace_method("auto", "native", is_piecewise_linear("test_models:tiny_gelu_net")) == "hutchpp"
    inputs, targets = torch.randn(16, 1, 8), torch.randint(0, 3, (16,))
    record = hessian_metrics(model, inputs, targets, piecewise_linear=False, trace_probes=30)
    assert record["trace_method"] == "hutchpp" and np.isfinite(record["top_eigenvalue"])
    config = validate_config(
        {"experiment": "t", "model": {"name": "test_models:tiny_gelu_net"}, "grid": {"width": [4], "batch_size": [16]}}
    )
    assert config["model"]["name"] == "test_models:tiny_gelu_net"
    with pytest.raises(ConfigError, match="package.module:function"):
        validate_config({"experiment": "t", "model": {"name": "my model"}, "grid": {"width": [4], "batch_size": [16]}})
    with pytest.raises(ValueError, match="cannot import 'no_such_package.models'"):
        build_model("no_such_package.models:net", 4, 3, (1, 8))
    with pytest.raises(ValueError, match="has no callable 'missing'"):
        build_model("test_models:missing", 4, 3, (1, 8))
    with pytest.raises(ValueError, match="returned str, not a torch.nn.Module"):
        build_model("test_models:not_a_model", 4, 3, (1, 8))


def test_resnet1d_depth_and_shortcut_variants():
    """resnet1d_8 is resnet1d; resnet1d_20 has 3 blocks per stage; _noshort drops every
    shortcut (no projection parameters, and the block output is the residual branch alone)."""
    torch.manual_seed(0)
    base = build_model("resnet1d", 3, 5, (1, 40)).state_dict()
    torch.manual_seed(0)
    same = build_model("resnet1d_8", 3, 5, (1, 40)).state_dict()
    assert base.keys() == same.keys() and all(torch.equal(base[k], same[k]) for k in base)
    deep = build_model("resnet1d_20", 3, 5, (1, 40))
    assert [len(getattr(deep, stage)) for stage in deep.stage_names] == [3, 3, 3]
    plain = build_model("resnet1d_20_noshort", 3, 5, (1, 40))
    assert not any("shortcut" in name for name in plain.state_dict())
    block = plain.layer1[0].eval()
    x = torch.randn(2, 3, 40)
    torch.testing.assert_close(block(x), torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))))
    with pytest.raises(ValueError, match="6n \\+ 2"):
        from lltax.models.resnet1d import resnet1d

        resnet1d(3, 5, (1, 40), depth=10)

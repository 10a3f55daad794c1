"""Weight matching: a permuted copy of a model is the same function, and alignment finds the
permutation back exactly, through residual streams and BatchNorm."""

import copy as copying

import pytest
import torch
from torch import nn

from lltax.metrics.alignment import group_sizes, permutation_spec, permute, weight_matching
from lltax.models import build_model

MODELS = [("mlp", (1, 40)), ("resnet1d", (1, 40)), ("resnet1d_20_noshort", (1, 40)), ("vgg11", (3, 16, 16)), ("resnet18", (3, 16, 16))]


def randomized(name, shape, seed=0):
    torch.manual_seed(seed)
    model = build_model(name, 4, 10, shape).double().eval()
    for module in model.modules():  # BatchNorm statistics that are not the identity
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize(("name", "shape"), MODELS)
def test_alignment_recovers_a_permuted_copy_exactly(name, shape):
    model = randomized(name, shape)
    spec = permutation_spec(model)
    state = model.state_dict()
    generator = torch.Generator().manual_seed(1)
    shuffles = {group: torch.randperm(size, generator=generator) for group, size in group_sizes(spec, state).items()}
    copy = build_model(name, 4, 10, shape).double().eval()
    copy.load_state_dict(permute(spec, shuffles, state))
    x = torch.randn(6, *shape, dtype=torch.float64)
    torch.testing.assert_close(copy(x), model(x), rtol=1e-10, atol=1e-12)  # the same function
    assert any(not torch.equal(copy.state_dict()[k], state[k]) for k in state)  # other weights
    found = weight_matching(spec, dict(model.named_parameters()), dict(copy.named_parameters()))
    for group, shuffle in shuffles.items():
        assert torch.equal(found[group], torch.argsort(shuffle)), group  # the inverse permutation, exactly
    aligned = permute(spec, found, copy.state_dict())
    assert all(torch.equal(aligned[k], state[k]) for k in state)


def test_residual_streams_share_one_permutation():
    spec = permutation_spec(build_model("resnet1d", 4, 10, (1, 40)))
    # The stem's output and the first stage's identity-shortcut block add onto one stream.
    assert spec["conv1.weight"][0] == spec["layer1.0.conv2.weight"][0] == spec["layer1.0.conv1.weight"][1] == "stem"
    assert spec["layer2.0.shortcut.0.weight"][:2] == spec["layer2.0.conv2.weight"][:1] + ("stem",)
    assert spec["linear.weight"] == (None, spec["layer3.0.conv2.weight"][0])


def test_an_architecture_without_a_rule_is_refused():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x)

    with pytest.raises(ValueError, match="not Custom"):
        permutation_spec(Custom())
    with pytest.raises(ValueError, match="Flatten after a permuted layer"):
        permutation_spec(nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(4, 2)))


def test_aligned_end_permutes_batchnorm_statistics_too():
    """A permuted copy's state dict, aligned back, is the original model evaluated with its own
    running statistics (issue 29.5: parameters alone left the statistics on the old units)."""
    from lltax.metrics.alignment import aligned_end

    model = randomized("resnet1d", (1, 40))
    spec = permutation_spec(model)
    state = model.state_dict()
    generator = torch.Generator().manual_seed(2)
    shuffles = {group: torch.randperm(size, generator=generator) for group, size in group_sizes(spec, state).items()}
    copy = build_model("resnet1d", 4, 10, (1, 40)).double().eval()
    copy.load_state_dict(permute(spec, shuffles, state))
    aligned = aligned_end(model, state, copy.state_dict())
    assert set(aligned) == set(state) and all(torch.equal(aligned[k], state[k]) for k in state)
    parameters_only = aligned_end(model, dict(model.named_parameters()), dict(copy.named_parameters()))
    assert set(parameters_only) == {n for n, _ in model.named_parameters()}


def test_global_pooling_in_a_sequential_cnn_permutes_trivially():
    """An ordinary CNN (Conv, BatchNorm, ReLU, AdaptiveAvgPool2d(1), Flatten, Linear) gets a
    spec: a permuted copy is the same function and is found back exactly."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 5, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 4),
    ).double()
    model[1].running_mean.normal_()
    model.eval()
    spec = permutation_spec(model)
    assert spec["7.weight"] == (None, "3")  # the Linear's inputs are the last conv's channels
    state = model.state_dict()
    shuffles = {group: torch.randperm(size, generator=torch.Generator().manual_seed(1)) for group, size in group_sizes(spec, state).items()}
    copy = copying.deepcopy(model)
    copy.load_state_dict(permute(spec, shuffles, state))
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(copy(x), model(x), rtol=1e-10, atol=1e-12)
    found = weight_matching(spec, dict(model.named_parameters()), dict(copy.named_parameters()))
    for group, shuffle in shuffles.items():
        assert torch.equal(found[group], torch.argsort(shuffle)), group
    with pytest.raises(ValueError, match="Flatten after a permuted layer"):
        permutation_spec(nn.Sequential(nn.Conv1d(1, 2, 3), nn.AdaptiveAvgPool1d(2), nn.Flatten(), nn.Linear(4, 2)))

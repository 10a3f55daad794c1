"""Translation (issue 28): the seq2seq layout, the generated language pair, the Transformer, and
every metric on it. Tiny models and a few steps: each test runs in about a second."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lltax.data.cells import load_dataset
from lltax.data.languages import language_pair
from lltax.data.sequences import EOS, IGNORE_INDEX, PAD, SPECIAL_TOKENS, detokenize, pack_pairs, swap_targets, target_count
from lltax.metrics.alignment import aligned_end, permutation_spec
from lltax.metrics.cka import linear_cka, model_outputs
from lltax.metrics.curves import evaluate_curve
from lltax.metrics.evaluate import evaluate_model
from lltax.metrics.hessian import hessian_metrics
from lltax.metrics.mixup import substituted_tokens
from lltax.metrics.surface import evaluate_points
from lltax.models import build_model, is_piecewise_linear
from lltax.training.loop import train_model

VOCABULARY = 9


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a loaded 2-core runner two threads made a step of these tiny
    models 200x slower (1.2 s instead of 6 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_transformer(seed: int = 0, dtype=torch.float32, length: int = 5, width: int = 4, **options):
    torch.manual_seed(seed)
    options = {"layers": 1, "heads": 2, "feedforward": 6, **options}
    return build_model("transformer", width, VOCABULARY, (2, length), options).to(dtype).eval()


def tiny_pairs(count: int = 6, seed: int = 0, length: int = 5):
    """Random sentences of 1..length-1 words over the non-special tokens, packed."""
    state = np.random.RandomState(seed)
    words = lambda: [int(t) for t in state.randint(len(SPECIAL_TOKENS), VOCABULARY, size=state.randint(1, length))]  # noqa: E731
    return pack_pairs([words() for _ in range(count)], [words() for _ in range(count)], length)


def test_pack_pairs_layout():
    x, y = pack_pairs([[5, 6], [7]], [[8], [4, 5, 6]], 5)
    assert x.tolist() == [[[5, 6, EOS, PAD, PAD], [8, EOS, PAD, PAD, PAD]], [[7, EOS, PAD, PAD, PAD], [4, 5, 6, EOS, PAD]]]
    assert y.tolist() == [[8, EOS, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX], [4, 5, 6, EOS, IGNORE_INDEX]]
    assert target_count(y) == 6 and target_count(torch.tensor([0, 3, 1])) == 3
    with pytest.raises(ValueError, match="more than length"):
        pack_pairs([[5, 6, 7, 8, 4]], [[5]], 5)


def test_per_token_loss_ignores_padding_hand_computed():
    x, y = pack_pairs([[5], [6, 7]], [[4], [5, 6, 7]], 5)  # 2 + 4 = 6 real target tokens
    logits = torch.randn(2, VOCABULARY, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    class Fixed(nn.Module):  # each pair's logits, whatever batch it comes in
        def forward(self, pairs):
            return logits[[x.tolist().index(pair.tolist()) for pair in pairs]]

    terms, correct = [], 0
    for n in range(2):
        for position in range(5):
            token = int(y[n, position])
            if token == IGNORE_INDEX:
                continue
            row = logits[n, :, position]
            terms.append(math.log(sum(math.exp(v) for v in row.tolist())) - row[token].item())
            correct += int(row.argmax()) == token
    assert len(terms) == 6
    for batch_size in (1, 2):  # batches of one pair each still weight tokens, not pairs
        loss, accuracy = evaluate_model(Fixed(), x, y, batch_size=batch_size)
        assert loss == pytest.approx(sum(terms) / 6, rel=1e-12)
        assert accuracy == pytest.approx(100.0 * correct / 6)
    assert F.cross_entropy(logits, y).item() == pytest.approx(sum(terms) / 6, rel=1e-12)  # what training minimizes


def test_label_noise_swaps_exact_fraction_of_pairs_fixed_and_nested():
    x, _ = pack_pairs([[4 + i % 5] for i in range(40)], [[4 + i % 5, 4 + i // 5] for i in range(40)], 4)  # 40 distinct targets
    indices = torch.arange(0, 40, 2)
    noisy_low, _ = swap_targets(x, 0.2, indices)
    noisy, targets = swap_targets(x, 0.5, indices)
    changed = (noisy[:, 1] != x[indices, 1]).any(dim=1)
    assert int(changed.sum()) == 10  # round(0.5 x 20)
    assert torch.equal(noisy[:, 0], x[indices, 0])  # sources untouched
    assert torch.equal(targets[changed], torch.where(noisy[changed, 1] == PAD, IGNORE_INDEX, noisy[changed, 1]))
    # Nested: the pairs swapped at 0.2 are swapped, to the same target, at 0.5.
    low = (noisy_low[:, 1] != x[indices, 1]).any(dim=1)
    assert int(low.sum()) == 4 and bool(changed[low].all()) and torch.equal(noisy_low[low], noisy[low])
    # No training seed enters: the same call gives the same pairs.
    assert torch.equal(swap_targets(x, 0.5, indices)[0], noisy)


def test_generated_pair_same_bytes_per_seed_and_cell_noise():
    first, again, other = (
        language_pair(seed=0, num_train=64, num_test=16),
        language_pair(seed=0, num_train=64, num_test=16),
        language_pair(seed=1, num_train=64, num_test=16),
    )
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(first, name).numpy().tobytes() == getattr(again, name).numpy().tobytes()
    assert first.vocabulary == again.vocabulary and first.x_train.numpy().tobytes() != other.x_train.numpy().tobytes()
    assert first.task == "seq2seq" and first.input_shape == (2, 10) and first.num_classes == len(first.vocabulary) == 103
    sentence = detokenize(first.x_train[0, 0].tolist(), first.vocabulary)
    assert sentence and " " in sentence and "<" not in sentence
    cell = load_dataset("langpair", "unused", label_noise=0.1, train_fraction=0.5)
    assert len(cell.x_train) == 2000 and int((cell.y_train != cell.y_train_clean).any(dim=1).sum()) == 200
    with pytest.raises(ValueError, match="swaps targets"):
        load_dataset("langpair", "unused", label_noise=0.1, label_noise_mode="paper")


def test_transformer_is_causal_and_ignores_source_padding():
    model = tiny_transformer(dtype=torch.float64)
    x, _ = tiny_pairs(4)
    logits = model(x)
    assert logits.shape == (4, VOCABULARY, 5)
    changed = x.clone()
    changed[:, 1, 3:] = 4  # target tokens from position 3 on: positions 0..3 predict from what precedes them
    assert torch.allclose(model(changed)[:, :, :4], logits[:, :, :4], atol=1e-12)
    wider = torch.cat([x, torch.full((4, 2, 3), PAD)], dim=2)  # three more padding columns
    assert torch.allclose(model(wider)[:, :, :5], logits, atol=1e-10)
    assert not is_piecewise_linear("transformer")
    with pytest.raises(ValueError, match="divisible by heads"):
        build_model("transformer", 6, VOCABULARY, (2, 5), {"heads": 4})
    with pytest.raises(ValueError, match="takes no option"):
        build_model("mlp", 4, VOCABULARY, (2, 5), {"heads": 2})


def test_hessian_top_eigenvalue_of_tiny_transformer_equals_dense():
    model = tiny_transformer(dtype=torch.float64, width=2, feedforward=3)  # 2 heads of one dimension each: 136 parameters
    with torch.no_grad():  # larger weights: a loss with curvature worth resolving
        for p in model.parameters():
            p.mul_(2.0)
    x, y = tiny_pairs(6)
    names, shapes = [n for n, _ in model.named_parameters()], [p.shape for p in model.parameters()]

    def loss(flat):
        params = {n: piece.view(s) for n, piece, s in zip(names, torch.split(flat, [math.prod(s) for s in shapes]), shapes)}
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    # The dense Hessian column by column, forward-mode over reverse-mode (torch.func), one column
    # at a time: torch.func.hessian (the same, vmapped over the columns) disagrees with finite
    # differences of the gradient by ~10 % on nn.MultiheadAttention here (torch 2.14), these agree.
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gradient = torch.func.grad(loss)
    dense = torch.stack([torch.func.jvp(gradient, (flat,), (column,))[1] for column in torch.eye(len(flat), dtype=torch.float64)])
    assert torch.allclose(dense, dense.T, atol=1e-10)
    eigenvalues = torch.linalg.eigvalsh(dense)
    with pytest.raises(ValueError, match="exact"):
        hessian_metrics(model, x, y, trace_method="exact", piecewise_linear=False)
    record = hessian_metrics(model, x, y, top_k=1, trace_method="auto", piecewise_linear=False, trace_probes=30, chunk_size=4)
    assert record["trace_method"] == "hutchpp"
    assert record["top_eigenvalue"] == pytest.approx(eigenvalues[-1].item(), rel=1e-6)
    assert abs(record["trace"] - dense.trace().item()) < 5 * record["trace_error"] + 1e-6 * abs(dense.trace().item())


def test_cka_per_token_is_one_with_itself_and_padding_invariant():
    model, other = tiny_transformer(0), tiny_transformer(1)
    x, _ = tiny_pairs(8)
    wider = torch.cat([x, torch.full((8, 2, 4), PAD)], dim=2)
    rows = model_outputs(model, x, "softmax", batch_size=3)
    assert rows.shape == (int((x[:, 1] != PAD).sum()), VOCABULARY)
    assert linear_cka(rows, rows) == pytest.approx(1.0, abs=1e-12)
    padded_model = tiny_transformer(0, length=9)  # the same weights: positions are computed, not stored
    padded_other = tiny_transformer(1, length=9)
    assert linear_cka(rows, model_outputs(other, x)) == pytest.approx(
        linear_cka(model_outputs(padded_model, wider), model_outputs(padded_other, wider)), abs=1e-6
    )
    perturbed = substituted_tokens(x, 8, 0.5, VOCABULARY, seed=0)
    assert torch.equal(perturbed, substituted_tokens(x, 8, 0.5, VOCABULARY, seed=0))
    assert torch.equal(perturbed[:, 1], x[torch.randperm(8, generator=torch.Generator().manual_seed(0)), 1])
    assert (
        (perturbed[:, 0] >= len(SPECIAL_TOKENS))
        == (x[:, 0][torch.randperm(8, generator=torch.Generator().manual_seed(0))] >= len(SPECIAL_TOKENS))
    ).all()


def test_curve_between_copies_has_zero_mode_connectivity_and_no_alignment():
    model = tiny_transformer(0)
    x, y = tiny_pairs(8)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    profile = evaluate_curve(model, [start, start, start], x, y, x, y, batch_size=4)
    assert len(set(profile["train_loss"])) == 1
    assert profile["mode_connectivity"] == 0.0 and profile["mode_connectivity_loss"] == 0.0
    with pytest.raises(ValueError, match="Transformer"):
        permutation_spec(model)
    assert aligned_end(model, start, start) is None


def test_landscape_points_stacked_equal_looped_and_training_learns():
    model = tiny_transformer(0)
    x, y = tiny_pairs(8)
    origin = {n: p.detach() for n, p in model.named_parameters()}
    direction = {n: torch.randn_like(p, generator=None) * 0.1 for n, p in origin.items()}
    coords = [[-1.0, 0.0, 1.0]]
    looped = evaluate_points(model, origin, [direction], coords, {"train": (x, y)}, stack=1)
    stacked = evaluate_points(model, origin, [direction], coords, {"train": (x, y)}, stack=3)
    assert np.allclose(looped["train_loss"], stacked["train_loss"], rtol=1e-5)
    assert looped["train_loss"][1] == pytest.approx(evaluate_model(model, x, y)[0], rel=1e-5)
    result = train_model(model.train(), x, y, batch_size=4, learning_rate=0.05, weight_decay=0.0, epochs=30, label_smoothing=0.1)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] and not result.diverged


def test_parameter_estimate_and_flops_of_transformer():
    from lltax.runtime.memory import parameter_estimate, transformer_parameters

    for width, options in ((4, {}), (8, {"layers": 3, "feedforward": 5, "heads": 2}), (4, {"tied_embeddings": False})):
        model = build_model("transformer", width, VOCABULARY, (2, 5), options)
        expected = transformer_parameters(width, VOCABULARY, **{k: v for k, v in options.items() if k != "heads"})
        assert sum(p.numel() for p in model.parameters()) == expected
    assert parameter_estimate("transformer", 4, (2, 5), VOCABULARY) == transformer_parameters(4, VOCABULARY)
    from torch.utils.flop_counter import FlopCounterMode

    from lltax.runtime.cost import forward_flops

    model = build_model("transformer", 16, VOCABULARY, (2, 6), {"layers": 2, "heads": 2})
    x, _ = tiny_pairs(1, length=6)
    with FlopCounterMode(display=False) as counter:
        model(x)
    estimate = forward_flops("transformer", 16, (2, 6), VOCABULARY, {"layers": 2})
    assert abs(estimate - counter.get_total_flops()) < 0.1 * counter.get_total_flops()

"""An encoder-decoder Transformer (Vaswani et al. 2017) from PyTorch's own layers, for translation.

``width`` is the embedding dimension d_model: the load axis of Yang et al. 2021's translation
experiment (their Figure 19 varies it up to 512 for six-layer, eight-head models). It takes
pairs in ``lltax.data.sequences``'s layout, (N, 2, L) token ids, and returns logits (N, V, L) for
every target position, predicted from the source and the target before it (teacher forcing:
the target is shifted right behind ``BOS`` here, and a causal mask hides what follows).

Defaults and why:

- ``layers`` = 2 encoder and 2 decoder layers, ``heads`` = 4, ``feedforward`` = 4 x width
  (Vaswani et al.'s ratio): small enough that the CPU preset's widths 8-32 train in a minute
  on two cores. The paper's architecture is ``layers: 6, heads: 8`` (configs/
  yang2021_transformer_iwslt.yaml); ``heads`` must divide ``width``.
- pre-LayerNorm (``norm_first``, a final LayerNorm after each stack): lltax trains with SGD
  and momentum, without Adam's warm-up, and post-LN Transformers are known to need warm-up to
  train at all (Xiong et al. 2020); pre-LN trains with plain SGD.
- ``dropout`` 0: the landscape of the trained function is measured in eval mode, and training
  mode then computes the same function (as for the image models, which have none).
- ``tied_embeddings`` True: one embedding matrix for source, target and output projection (a
  joint vocabulary, as the IWSLT recipes of fairseq share them); False gives each its own.
- sinusoidal positions, computed in the forward pass: no parameter and no buffer, so
  landscape directions and BatchNorm-style state handling never see them.

LayerNorm normalizes each token by its own statistics: unlike BatchNorm there are no running
statistics, so a point on a curve or a landscape plane needs nothing recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from lltax.data.sequences import BOS, PAD

DEFAULT_LAYERS, DEFAULT_HEADS, FEEDFORWARD_RATIO = 2, 4, 4


class Transformer(nn.Module):
    """Encoder-decoder over one joint vocabulary of ``vocabulary`` tokens."""

    piecewise_linear = False  # softmax attention, LayerNorm: the exact Hessian trace does not apply

    def __init__(
        self,
        vocabulary: int,
        width: int,
        *,
        layers: int = DEFAULT_LAYERS,
        heads: int = DEFAULT_HEADS,
        feedforward: int | None = None,
        dropout: float = 0.0,
        tied_embeddings: bool = True,
    ):
        super().__init__()
        self.width = width
        self.tied_embeddings = tied_embeddings
        self.embedding = nn.Embedding(vocabulary, width)
        if not tied_embeddings:
            self.target_embedding = nn.Embedding(vocabulary, width)
            self.output = nn.Linear(width, vocabulary, bias=False)
        feedforward = FEEDFORWARD_RATIO * width if feedforward is None else feedforward
        options = dict(d_model=width, nhead=heads, dim_feedforward=feedforward, dropout=dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(**options), layers, norm=nn.LayerNorm(width), enable_nested_tensor=False
        )
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**options), layers, norm=nn.LayerNorm(width))

    def positions(self, length: int, like: torch.Tensor) -> torch.Tensor:
        """Sinusoidal position encodings (length, width) (Vaswani et al. 2017, Section 3.5)."""
        position = torch.arange(length, device=like.device, dtype=like.dtype)[:, None]
        frequency = torch.exp(torch.arange(0, self.width, 2, device=like.device, dtype=like.dtype) * (-math.log(10000.0) / self.width))
        encoding = torch.zeros(length, self.width, device=like.device, dtype=like.dtype)
        encoding[:, 0::2] = torch.sin(position * frequency)
        encoding[:, 1::2] = torch.cos(position * frequency)[:, : self.width // 2]
        return encoding

    def embed(self, tokens: torch.Tensor, table: nn.Embedding) -> torch.Tensor:
        vectors = table(tokens) * math.sqrt(self.width)
        return vectors + self.positions(tokens.shape[-1], vectors)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        # The math kernel of attention: the fused ones (flash, memory-efficient) have neither
        # forward-mode derivatives nor double backward, which Hessian-vector products and
        # torch.func need; the models here are small enough not to miss them.
        with sdpa_kernel(SDPBackend.MATH):
            return self._forward(pairs)

    def _forward(self, pairs: torch.Tensor) -> torch.Tensor:
        tokens = pairs.long()  # a float copy of the ids (e.g. a float64 test) is still ids
        source, target = tokens[:, 0], tokens[:, 1]
        shifted = torch.cat([torch.full_like(target[:, :1], BOS), target[:, :-1]], dim=1)  # teacher forcing
        return self._decode(self._encode(source), source == PAD, shifted)

    def _encode(self, source: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embed(source, self.embedding), src_key_padding_mask=source == PAD)

    def _decode(self, memory: torch.Tensor, padding: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(shifted.shape[1], device=shifted.device, dtype=memory.dtype)
        table = self.embedding if self.tied_embeddings else self.target_embedding
        hidden = self.decoder(self.embed(shifted, table), memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=padding)
        logits = hidden @ self.embedding.weight.T if self.tied_embeddings else self.output(hidden)
        return logits.transpose(1, 2)  # (N, V, L): the class dimension second, as cross_entropy takes it

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """The encoder's output (N, L, width) for source token ids (N, L): computed once per
        sentence by greedy decoding (``lltax.metrics.bleu``)."""
        with sdpa_kernel(SDPBackend.MATH):
            return self._encode(source.long())

    def decode(self, memory: torch.Tensor, source: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """Logits (N, V, T) after each token of ``prefix`` (N, T), ``BOS`` first: the prediction
        of the next target token at every position, given the encoded source."""
        with sdpa_kernel(SDPBackend.MATH):
            return self._decode(memory, source.long() == PAD, prefix.long())


def transformer(
    width: int,
    num_classes: int,
    input_shape: Sequence[int],
    *,
    layers: int = DEFAULT_LAYERS,
    heads: int = DEFAULT_HEADS,
    feedforward: int | None = None,
    dropout: float = 0.0,
    tied_embeddings: bool = True,
) -> Transformer:
    """The registry's ``transformer``: ``num_classes`` is the vocabulary size, ``input_shape`` (2, L)."""
    if len(input_shape) != 2 or input_shape[0] != 2:
        raise ValueError(
            f"transformer takes translation pairs of per-sample shape (2, length) (lltax.data.sequences), got input_shape {tuple(input_shape)}; "
            "use a translation dataset such as langpair"
        )
    for name, value in (("layers", layers), ("heads", heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"transformer option {name} must be an integer >= 1, got {value!r}")
    if width % heads or width % 2:
        raise ValueError(f"transformer width (embedding dimension) {width} must be even and divisible by heads = {heads}")
    return Transformer(
        num_classes, width, layers=layers, heads=heads, feedforward=feedforward, dropout=dropout, tied_embeddings=tied_embeddings
    )

"""SGD with momentum and weight decay, computed exactly as ``torch.optim.SGD`` does (its
single-tensor path; no dampening, no Nesterov), without ``torch.optim``.

Why not ``torch.optim.SGD``: its ``Optimizer`` imports ``torch._dynamo`` when parameters are
added (~1 s per process), and lltax runs thousands of short training and curve-fitting jobs.
tests/test_train.py checks that both give bit-identical parameters step after step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class SGD:
    """``p <- p - lr * b``, ``b <- momentum * b + (grad + weight_decay * p)`` (``b = g`` at the first step)."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD got an empty parameter list")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.momentum_buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            grad = param.grad
            if self.weight_decay != 0:
                grad = grad.add(param, alpha=self.weight_decay)
            if self.momentum != 0:
                buffer = self.momentum_buffers[i]
                if buffer is None:
                    buffer = self.momentum_buffers[i] = torch.clone(grad).detach()
                else:
                    buffer.mul_(self.momentum).add_(grad)
                grad = buffer
            param.add_(grad, alpha=-self.lr)

    def state_dict(self) -> dict:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "momentum_buffers": [None if b is None else b.clone() for b in self.momentum_buffers],
        }

    def load_state_dict(self, state: dict) -> None:
        buffers = state["momentum_buffers"]
        if len(buffers) != len(self.params):
            raise ValueError(f"optimizer state holds {len(buffers)} momentum buffers for {len(self.params)} parameters")
        self.lr, self.momentum, self.weight_decay = state["lr"], state["momentum"], state["weight_decay"]
        self.momentum_buffers = [None if b is None else b.to(p.device) for b, p in zip(buffers, self.params)]

"""SGD with momentum and weight decay, computed exactly as ``torch.optim.SGD`` does (no
dampening, no Nesterov), without ``torch.optim``, each operation one multi-tensor kernel.

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
        # One multi-tensor (torch._foreach_*) kernel per operation over every parameter instead
        # of a few per parameter: ~60 -> 4 launches for a ResNet18. Elementwise, so each value is
        # computed by the same float operations as the one-tensor-at-a-time update.
        indices = [i for i, param in enumerate(self.params) if param.grad is not None]
        if not indices:
            return
        params = [self.params[i] for i in indices]
        grads = [param.grad for param in params]
        if self.weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if self.momentum != 0:
            started = [self.momentum_buffers[i] is not None for i in indices]
            running = [self.momentum_buffers[i] for i, s in zip(indices, started) if s]
            if running:  # b <- momentum * b + g
                torch._foreach_mul_(running, self.momentum)
                torch._foreach_add_(running, [grad for grad, s in zip(grads, started) if s])
            for i, grad, s in zip(indices, grads, started):
                if not s:  # b = g at a parameter's first step
                    self.momentum_buffers[i] = torch.clone(grad).detach()
            grads = [self.momentum_buffers[i] for i in indices]
        torch._foreach_add_(params, grads, alpha=-self.lr)

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

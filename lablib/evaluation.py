"""Evaluation: language-model loss and perplexity, and the unigram baseline they must beat."""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def lm_loss(model, blocks: torch.Tensor, batch_size: int = 16) -> float:
    """Mean next-token negative log-likelihood (nats/token) over every target of ``blocks``."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        x = blocks[i:i + batch_size]
        logits = model(input_ids=x).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1),
                                                reduction="sum")
        total += nll.item()
        count += x[:, 1:].numel()
    return total / count


def perplexity(loss: float) -> float:
    return math.exp(loss)


def unigram_loss(train_blocks: torch.Tensor, val_blocks: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy on the validation targets of a unigram model fit on the train tokens (add-one smoothed).

    A model that ignores context can do no better; a language model must go clearly below it.
    """
    counts = torch.bincount(train_blocks.reshape(-1), minlength=vocab_size).double() + 1.0
    logp = torch.log(counts / counts.sum())
    return float(-logp[val_blocks[:, 1:].reshape(-1)].mean())

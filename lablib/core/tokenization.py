"""Tokenization: train a byte-level BPE tokenizer on the corpus, and pack documents into blocks."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_bpe(texts: Sequence[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2 style: any byte sequence encodes, nothing is ever unknown), digits split."""
    tok = Tokenizer(models.BPE())
    # Digits are split one per token (as Llama and SmolLM2 do): "14" reads the same wherever it appears,
    # which small models need to copy, compare and add numbers.
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD,
                                   model_max_length=1_000_000)


def encode_docs(tokenizer, texts: Sequence[str]) -> List[List[int]]:
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def pack(token_docs: Sequence[Sequence[int]], block_size: int, eos_id: int) -> torch.Tensor:
    """Join documents with EOS after each and cut the stream into full blocks (no padding).

    The tail shorter than a block is dropped; the result is ``[n_blocks, block_size]`` int64.
    """
    stream = np.fromiter((t for doc in token_docs for t in (*doc, eos_id)), dtype=np.int64)
    n_blocks = len(stream) // block_size
    if n_blocks == 0:
        raise ValueError(f"{len(stream)} tokens make no block of train.block_size={block_size}; "
                         "use more data or a smaller block")
    return torch.from_numpy(stream[: n_blocks * block_size].reshape(n_blocks, block_size).copy())

"""A Hugging Face ``Trainer`` with a token-level focal loss that never holds the logits.

A tiny causal language model is built from a config and randomly initialised (nothing is downloaded) and trained on
random token sequences (prompt tokens masked with -100, as in supervised fine-tuning). The model is wrapped so that
its forward returns the last hidden states instead of the logits; ``compute_loss_func`` applies the model's own
output layer (``lm_head``) to them through ``focal.torch.LinearSoftmaxFocalLoss``, dividing the summed loss by
``num_items_in_batch`` as the ``Trainer``'s docs ask (the ``normalizer``), so gradient accumulation gives the
same loss as one large batch.

    python examples/hf_trainer.py            # 60 steps
    python examples/hf_trainer.py --quick    # 8 steps, for the tests

Prints the first step's loss beside the unfused ``focal.softmax_focal_loss`` of the model's own logits (equal), then
the loss at the first and last steps.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

import torch
from torch import nn

import focal
import focal.torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing to fetch: the model comes from a config

VOCAB, PROMPT = 512, 8


class HiddenStates(nn.Module):
    """The causal LM without its logits: ``forward`` returns the last hidden states, and the loss applies the output
    layer (``lm.lm_head``) itself, a chunk of tokens at a time."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, Any]:
        out = self.lm.model(input_ids=input_ids, attention_mask=attention_mask)
        return {"hidden_states": out.last_hidden_state}


class RandomTokens(torch.utils.data.Dataset):
    def __init__(self, size: int, length: int) -> None:
        generator = torch.Generator().manual_seed(0)
        # a learnable pattern: each sequence repeats a short random motif
        motif = torch.randint(0, VOCAB, (size, 4), generator=generator)
        self.ids = motif.repeat(1, length // 4)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        labels = self.ids[i].clone()
        labels[:PROMPT] = -100  # the prompt is not trained on
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)
    lm = LlamaForCausalLM(config)
    model = HiddenStates(lm)
    criterion = focal.torch.LinearSoftmaxFocalLoss(gamma=2.0, chunk_size=64)

    def compute_loss_func(outputs: dict[str, Any], labels: torch.Tensor, num_items_in_batch: Any = None
                          ) -> torch.Tensor:
        hidden, target = outputs["hidden_states"][:, :-1], labels[:, 1:]  # token t predicts token t + 1
        if num_items_in_batch is None:  # outside the Trainer's accumulation: the mean over the tokens trained on
            return criterion(lm.lm_head, hidden, target)
        return criterion(lm.lm_head, hidden, target, normalizer=num_items_in_batch)

    data = RandomTokens(64, 32)
    batch = {k: torch.stack([data[i][k] for i in range(4)]) for k in ("input_ids", "labels")}
    with torch.no_grad():
        fused = compute_loss_func(model(batch["input_ids"]), batch["labels"])
        logits = lm(batch["input_ids"]).logits
        unfused = focal.softmax_focal_loss(logits[:, :-1], batch["labels"][:, 1:], gamma=2.0, ignore_index=-100)
    print(f"first batch: fused {fused.item():.6f}, unfused on the logits {unfused.item():.6f}")

    steps = 8 if args.quick else 60
    losses: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(output_dir=out, per_device_train_batch_size=8, gradient_accumulation_steps=2,
                                     max_steps=steps, learning_rate=3e-3, logging_steps=1, report_to=[],
                                     save_strategy="no", use_cpu=True, remove_unused_columns=False,
                                     disable_tqdm=True, seed=0)
        trainer = Trainer(model=model, args=training, train_dataset=data, compute_loss_func=compute_loss_func)
        trainer.train()
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print(f"focal loss: first step {losses[0]:.4f}, last step {losses[-1]:.4f} ({len(losses)} steps)")


if __name__ == "__main__":
    main()

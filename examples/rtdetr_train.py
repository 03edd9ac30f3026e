"""A tiny RT-DETR (Hugging Face transformers) trained with focal's varifocal loss patched into its criterion.

The model is built from a small random config (nothing is downloaded) and trained on random images, each with one
or two boxes of a class whose position its colour gives away. ``RTDetrLoss.loss_labels_vfl`` is replaced by
:func:`focal_loss_labels_vfl`, which computes the same loss with ``focal.varifocal_loss``: the matched queries'
IoU at their class as the target, the matched one-hot (not ``IoU > 0``) as the positives, and the negatives' weight
``α σ(x)^γ`` held constant (``detach_modulator=True``) as RT-DETR's own code holds it (``logits.detach()``). Every
decoder layer's and the denoising queries' VFL terms go through it.

    python examples/rtdetr_train.py            # 60 steps
    python examples/rtdetr_train.py --quick    # 8 steps, for the tests

Prints, at the first step, the criterion's summed loss with transformers' own VFL and with focal's and the largest
difference of the two's gradients w.r.t. the model's parameters (the same randomness for both); then the loss at
the first and last training steps.
"""

from __future__ import annotations

import argparse
import functools
import os
from typing import Any

import torch

import focal

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing to fetch: the model comes from a config

from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig  # noqa: E402
from transformers.image_transforms import center_to_corners_format  # noqa: E402
from transformers.loss.loss_for_object_detection import box_iou  # noqa: E402
from transformers.loss.loss_rt_detr import RTDetrLoss  # noqa: E402

CLASSES, SIZE = 5, 64


def focal_loss_labels_vfl(self: RTDetrLoss, outputs: dict[str, Any], targets: list[dict[str, Any]],
                          indices: list[tuple[torch.Tensor, torch.Tensor]], num_boxes: Any, log: bool = True,
                          detach: bool = True) -> dict[str, torch.Tensor]:
    """``RTDetrLoss.loss_labels_vfl`` with ``focal.varifocal_loss``: the same value and gradient (its weight
    ``α σ(x)^γ`` held constant, a matched query of IoU 0 weighted 0 rather than as a negative). ``detach=False``:
    the weight differentiated (VarifocalNet's and mmdet's gradient, not RT-DETR's)."""
    logits = outputs["logits"]
    batch, queries = self._get_source_permutation_idx(indices)
    boxes = torch.cat([t["boxes"][i] for t, (_, i) in zip(targets, indices)], dim=0)
    classes = torch.cat([t["class_labels"][i] for t, (_, i) in zip(targets, indices)])
    ious = torch.diag(box_iou(center_to_corners_format(outputs["pred_boxes"][batch, queries].detach()),
                              center_to_corners_format(boxes))[0])
    score = torch.zeros_like(logits)
    score[batch, queries, classes] = ious.to(logits.dtype)
    matched = torch.zeros_like(logits, dtype=torch.bool)
    matched[batch, queries, classes] = True
    loss = focal.varifocal_loss(logits, score, alpha=self.alpha, gamma=self.gamma, weight=~(matched & (score == 0)),
                                reduction="sum", normalizer=num_boxes, detach_modulator=detach)
    return {"loss_vfl": loss}


def tiny_model(seed: int = 0) -> RTDetrForObjectDetection:
    backbone = RTDetrResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                  layer_type="basic", out_features=["stage2", "stage3", "stage4"])
    config = RTDetrConfig(backbone_config=backbone, num_labels=CLASSES, d_model=32, encoder_hidden_dim=32,
                          encoder_in_channels=[32, 64, 128], encoder_ffn_dim=64, decoder_ffn_dim=64,
                          decoder_layers=2, encoder_layers=1, num_queries=20, num_denoising=10,
                          decoder_in_channels=[32, 32, 32], encoder_attention_heads=2, decoder_attention_heads=2,
                          use_pretrained_backbone=False)
    torch.manual_seed(seed)
    return RTDetrForObjectDetection(config)


def batch(generator: torch.Generator, size: int = 4) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Images of noise with one or two filled squares; a square's class is its colour channel and brightness."""
    images = torch.randn(size, 3, SIZE, SIZE, generator=generator) * 0.1
    labels = []
    for image in images:
        count = int(torch.randint(1, 3, (1,), generator=generator))
        classes = torch.randint(0, CLASSES, (count,), generator=generator)
        centres = torch.rand(count, 2, generator=generator) * 0.5 + 0.25
        sides = torch.rand(count, 2, generator=generator) * 0.2 + 0.15
        for c, (cx, cy), (w, h) in zip(classes.tolist(), centres.tolist(), sides.tolist()):
            x0, x1 = int((cx - w / 2) * SIZE), int((cx + w / 2) * SIZE)
            y0, y1 = int((cy - h / 2) * SIZE), int((cy + h / 2) * SIZE)
            image[c % 3, y0:y1, x0:x1] += 1.0 + c // 3
        labels.append({"class_labels": classes, "boxes": torch.cat([centres, sides], dim=1)})
    return images, labels


def first_step_agreement(model: RTDetrForObjectDetection, images: torch.Tensor,
                         labels: list[dict[str, torch.Tensor]]) -> tuple[float, float, float, float]:
    """The criterion's loss with transformers' VFL and with focal's, and the largest difference of focal's gradient
    from transformers' relative to its largest, with the weight held (as RT-DETR) and differentiated (the
    denoising queries' noise drawn from the same seed for each)."""
    results = []
    for patch in (None, focal_loss_labels_vfl, functools.partialmethod(focal_loss_labels_vfl, detach=False)):
        original = RTDetrLoss.loss_labels_vfl
        if patch is not None:
            RTDetrLoss.loss_labels_vfl = patch  # type: ignore[assignment]
        try:
            torch.manual_seed(1)
            model.zero_grad()
            loss = model(pixel_values=images, labels=labels).loss
            loss.backward()
        finally:
            RTDetrLoss.loss_labels_vfl = original  # type: ignore[method-assign]
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results.append((float(loss.detach()), grads))
    (theirs, g_theirs), (ours, g_ours), (_, g_differentiated) = results
    scale = g_theirs.abs().max()
    return (theirs, ours, float((g_ours - g_theirs).abs().max() / scale),
            float((g_differentiated - g_theirs).abs().max() / scale))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 steps")
    steps = 8 if parser.parse_args().quick else 60
    model = tiny_model()
    generator = torch.Generator().manual_seed(0)
    images, labels = batch(generator)
    theirs, ours, gap, differentiated = first_step_agreement(model, images, labels)
    print(f"first batch: transformers' VFL {theirs:.6f}, focal's {ours:.6f}; gradient difference {gap:.2e} of the "
          f"largest; without detach_modulator {differentiated:.2e}")
    RTDetrLoss.loss_labels_vfl = focal_loss_labels_vfl  # type: ignore[method-assign]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(steps):
        torch.manual_seed(len(losses))
        loss = model(pixel_values=images, labels=labels).loss  # one batch, fitted: the loss must fall
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    print(f"first step {losses[0]:.4f}, last step {losses[-1]:.4f}")


if __name__ == "__main__":
    main()

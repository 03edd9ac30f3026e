"""What GPU users run, on a GPU: skipped where none is found (device detection, not a flag).

- every case of the bench matrix under ``torch.cuda.set_sync_debug_mode("error")`` (a synchronisation raises),
  value and gradient equal to the CPU's to the conformance tolerances;
- a training step (the losses of a detector's and a segmenter's heads, and a fused linear loss) captured by
  ``torch.cuda.graph`` and replayed on new data: equal to the eager step;
- float16 and bfloat16 under ``torch.autocast("cuda")``: a float32 loss, the gradient back to float32 weights,
  close to the float32 run's;
- PyTorch's compiled path (Triton) on the GPU equal to the plain one;
- JAX on a GPU reads nothing back (``jax.transfer_guard_device_to_host("disallow")``);
- second derivatives (a double backward, ``torch.func.hessian``) on the GPU equal the reference.

The CPU's stand-ins for all of this are tests/test_devices.py's (meta, a fake cuda:0). ``bash benchmarks/gpu_check.sh``
runs this file on a GPU machine.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import CROSS_RTOL, REFERENCE_RTOL, assert_close, import_or_skip, record_fused_runs

import focal
from focal.commands import matrix_cases as mc

torch = import_or_skip("torch")
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU here (tests/test_devices.py stands in for one)")
SCALE = 0.002  # about 130 anchors x 80 classes, 524 pixels x 19 classes
CASES = {case.name: case for case in mc.CASES}


def _loss_and_grad(case: mc.Case, device: str, dtype: torch.dtype, *, sync_debug: bool = False):
    """The case's summed loss and its gradient w.r.t. the logits, on ``device``, as NumPy float64; with
    ``sync_debug`` every synchronisation with the device during the call raises."""
    data = mc.make(case, SCALE, channels_first=True)
    x = torch.tensor(data.logits, dtype=dtype, device=device, requires_grad=True)
    targets = torch.as_tensor(data.targets, device=device)
    if targets.is_floating_point():
        targets = targets.to(dtype)
    extras = {k: torch.as_tensor(v, device=device) for k, v in data.extras.items()}
    extras = {k: v.to(dtype) if v.is_floating_point() else v for k, v in extras.items()}
    kwargs = case.call_kwargs(1, extras)
    previous = torch.cuda.get_sync_debug_mode() if sync_debug else None
    if sync_debug:
        torch.cuda.set_sync_debug_mode("error")
    try:
        loss = getattr(focal, case.loss)(x, targets, **kwargs)
        (grad,) = torch.autograd.grad(loss, [x])
    finally:
        if sync_debug:
            torch.cuda.set_sync_debug_mode(previous)
    return loss.detach().to("cpu", torch.float64).numpy(), grad.to("cpu", torch.float64).numpy()


@needs_cuda
@pytest.mark.parametrize("name", list(CASES))
def test_every_case_on_the_gpu_synchronises_nothing_and_equals_the_cpu(name):
    case = CASES[name]
    reference = _loss_and_grad(case, "cpu", torch.float64)
    float64 = _loss_and_grad(case, "cuda", torch.float64, sync_debug=True)
    float32 = _loss_and_grad(case, "cuda", torch.float32, sync_debug=True)
    for what, expected, got64, got32 in zip(("value", "gradient"), reference, float64, float32):
        assert_close(got64, expected, CROSS_RTOL["float64"], f"{name} float64 {what}")
        assert_close(got32, expected, REFERENCE_RTOL["float32"], f"{name} float32 {what}")


class _Heads(torch.nn.Module):
    """A detector's classification head (sigmoid focal, RetinaNet's normalizer), a segmenter's (softmax focal, label
    smoothing, ignored pixels) and a language model's output layer (the fused linear loss)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(8, 16)
        self.anchors = torch.nn.Linear(16, 5)
        self.pixels = torch.nn.Linear(16, 7)
        self.vocabulary = torch.nn.Linear(16, 11)
        self.sigmoid = focal.torch.SigmoidFocalLoss(normalizer="num_positives")
        self.softmax = focal.torch.SoftmaxFocalLoss(label_smoothing=0.1, ignore_index=255, alpha=[0.5] * 7)
        self.linear = focal.torch.LinearSoftmaxFocalLoss(chunk_size=8)

    def forward(self, x, boxes, labels, tokens):
        h = torch.relu(self.body(x))
        return (self.sigmoid(self.anchors(h), boxes) + self.softmax(self.pixels(h), labels)
                + self.linear(self.vocabulary, h, tokens))


def _batch(seed: int, device: str):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 8, generator=g)
    boxes = (torch.rand(24, 5, generator=g) < 0.2).float()
    labels = torch.randint(0, 7, (24,), generator=g)
    labels[::5] = 255
    tokens = torch.randint(0, 11, (24,), generator=g)
    tokens[::7] = -100
    return [t.to(device) for t in (x, boxes, labels, tokens)]


@needs_cuda
def test_a_training_step_captured_by_a_cuda_graph_equals_the_eager_step():
    torch.manual_seed(0)
    model = _Heads().cuda()
    eager = copy.deepcopy(model)
    static = _batch(0, "cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graph asks
        for _ in range(3):
            model.zero_grad(set_to_none=True)
            model(*static).backward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    model.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = model(*static)
        static_loss.backward()
    for seed in (1, 2, 3):
        batch = _batch(seed, "cuda")
        for held, new in zip(static, batch):
            held.copy_(new)
        graph.replay()
        eager.zero_grad(set_to_none=True)
        expected = eager(*batch)
        expected.backward()
        torch.testing.assert_close(static_loss, expected, rtol=1e-5, atol=1e-6)
        for (name, p), q in zip(model.named_parameters(), eager.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)


@needs_cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_autocast_on_the_gpu(dtype):
    """Under autocast the heads give half logits; the loss is computed from them in float32 (a float32 loss, equal
    to the float32 loss of the same logits) and the gradient reaches them in their dtype, and the weights in
    float32."""
    torch.manual_seed(0)
    model = _Heads().cuda()
    batch = _batch(0, "cuda")
    with torch.autocast("cuda", dtype=getattr(torch, dtype)):
        loss = model(*batch)
        h = torch.relu(model.body(batch[0]))
        half = model.pixels(h).detach().requires_grad_(True)
        assert half.dtype == getattr(torch, dtype)
        ours = model.softmax(half, batch[2]) + model.sigmoid(half[:, :5], batch[1])
    assert loss.dtype == torch.float32 and ours.dtype == torch.float32
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), name
    (grad,) = torch.autograd.grad(ours, [half])
    single = half.detach().float().requires_grad_(True)
    expected = model.softmax(single, batch[2]) + model.sigmoid(single[:, :5], batch[1])
    (expected_grad,) = torch.autograd.grad(expected, [single])
    assert_close(ours.item(), expected.item(), REFERENCE_RTOL["float32"], "loss")
    assert grad.dtype == half.dtype
    assert_close(grad.float().cpu().numpy(), expected_grad.cpu().numpy(), REFERENCE_RTOL[dtype], "gradient")


@needs_cuda
@pytest.mark.parametrize("name", ["sigmoid_focal_loss", "softmax label_smoothing=0.1"])
def test_the_compiled_path_on_the_gpu_equals_the_plain_one(name, monkeypatch):
    case = CASES[name]
    plain = _loss_and_grad(case, "cuda", torch.float32)
    runs = record_fused_runs(monkeypatch)
    fused = _loss_and_grad(case, "cuda", torch.float32)
    assert runs, "the compiled path did not run"
    for expected, got in zip(plain, fused):
        assert_close(got, expected, CROSS_RTOL["float32"], name)


def _jax_gpu():
    jax = import_or_skip("jax")
    try:
        return jax, jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("no JAX GPU here (tests/test_devices.py stands in for one)")


@pytest.mark.parametrize("name", list(CASES))
def test_jax_on_a_gpu_reads_nothing_back(name):
    jax, gpu = _jax_gpu()
    case = CASES[name]
    data = mc.make(case, SCALE, channels_first=False)
    x, targets = jax.device_put(data.logits, gpu), jax.device_put(data.targets, gpu)
    extras = {k: jax.device_put(v, gpu) for k, v in data.extras.items()}
    kwargs = case.call_kwargs(-1, extras)
    fn = getattr(focal, case.loss)
    with jax.transfer_guard_device_to_host("disallow"):
        value = fn(x, targets, **kwargs)
        both, grad = focal.value_and_grad(fn)(x, targets, **kwargs)
    assert value.devices() == {gpu} and grad.devices() == {gpu}
    numpy_value = fn(data.logits.astype(np.float64), data.targets, **case.call_kwargs(-1, data.extras))
    assert_close(np.asarray(value), numpy_value, REFERENCE_RTOL["float32"], name)


@needs_cuda
@pytest.mark.parametrize("case", ["sigmoid-g0.5-soft", "softmax-options-g2.0-hard", "tversky-g1.0-hard"])
def test_second_derivatives_on_the_gpu_equal_the_cpus(case):
    """A double backward and ``torch.func.hessian`` on the GPU, float64, under the sync debug mode: equal to the
    reference (tests/test_torch_second_order.py's) and nothing read back."""
    from second_order import TARGETS as KINDS
    from second_order import central_differences, logits_for, losses

    name, target = case.rsplit("-", 1)
    _, fn, params, kind = next(c for c in losses() if c[0] == name)
    t = KINDS[kind][target]
    x = logits_for(fn)
    expected = central_differences(fn, params, x, t)
    y = torch.as_tensor(t, device="cuda")
    y = y if t.dtype.kind == "i" else y.double()
    xt = torch.as_tensor(x, device="cuda")
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        hessians = {"create_graph": torch.autograd.functional.hessian(lambda v: fn(v, y, **params), xt),
                    "torch.func.hessian": torch.func.hessian(lambda v: fn(v, y, **params))(xt)}
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    for route, hessian in hessians.items():
        assert_close(hessian.reshape(x.size, x.size).cpu().numpy(), expected, 1e-6, route)

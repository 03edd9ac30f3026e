"""Softmax focal loss (multi-class) and the focal terms the other softmax losses reuse."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from ._categorical import Lazy, TargetKernel, Terms, TermsOut, prepare_softmax, read
from ._checks import check_flag
from ._docs import document
from ._gamma import flsd53
from ._hyper import TARGETS, Partials, bind, is_array, is_zero, reduce_partials
from ._kernel import Grads, Wanted, expand
from ._numerics import held, neg_log_over, power, stops_gradients, tiny
from ._plan import LossPlan, plans
from .backends._base import Array


@dataclass(frozen=True)
class FocalTerms:
    """The parameters of ``f = −w M(p) log p + ε y (1 − p)^(γ+1)``, with M the modulator (numbers or Slots)."""

    epsilon: Any = 0.0  # Poly-1
    reduced_threshold: Any = None  # M = 1 below th, ((1 − p)/th)^γ above
    truncate_margin: Any = None  # hard-truncated: M = [p ≤ m], no gradient through it
    # M computed from the logits held constant: no derivative of it w.r.t. them, of any order (w.r.t. γ and the
    # threshold it keeps its own); never with ε ≠ 0 (Poly-1 takes no such option)
    detach: bool = False


def _resolve_gamma(xp: Any, t: Terms) -> Any:
    if t.gamma is flsd53:
        return 3.0 + 2.0 * xp.astype(t.p < 0.2, t.p.dtype)
    return t.gamma


def modulator(xp: Any, t: Terms, params: FocalTerms) -> tuple[Any, Any, Partials]:
    """``M``, ``dM/d log(1 − p)`` and the partials of M: ``(1 − p)^γ`` and ``γ M`` (``∂M/∂γ = M log(1 − p)``),
    or their reduced/truncated forms; with ``detach``, M of the probabilities held constant and ``dM`` 0."""
    gamma = _resolve_gamma(xp, t)
    if params.truncate_margin is not None:
        return xp.astype(t.p <= params.truncate_margin, t.p.dtype), 0.0, {}
    if params.detach:
        m, _, partials = modulator(xp, _held_terms(xp, t), dataclasses.replace(params, detach=False))
        return m, 0.0, partials
    if params.reduced_threshold is not None:
        th = params.reduced_threshold
        below = t.p < th
        log_ratio = t.v - (xp.log(th) if is_array(th) else math.log(th))  # log((1 − p)/th)
        m = xp.where(below, 1.0, xp.exp(gamma * log_ratio))
        partials = {"gamma": lambda: xp.where(below, 0.0, m * log_ratio),
                    "reduced_threshold": lambda: xp.where(below, 0.0, -gamma * m / th)}
        return m, xp.where(below, 0.0, gamma * m), partials
    if is_zero(gamma):
        return 1.0, 0.0, {}
    m = power(xp, t.one_minus_p, t.log1m_p, gamma)
    return m, gamma * m, {"gamma": lambda: m * t.v}


def _held_terms(xp: Any, t: Terms) -> Terms:
    """``t`` with the probabilities a modulator reads held constant (``focal._numerics.held``)."""
    if not stops_gradients(xp):
        return t
    log1m_p = t.log1m_p
    return t._replace(p=held(xp, t.p), one_minus_p=held(xp, t.one_minus_p),
                      log1m_p=Lazy(lambda: held(xp, log1m_p())))


def focal_terms(xp: Any, t: Terms, params: FocalTerms, *, grad: bool = True) -> TermsOut:
    """``f``, ``A = ∂f/∂u``, ``B = ∂f/∂v`` and ``E = B p/(1 − p)`` of the focal family, and the partials.

    With ``r = −log p/(1 − p)`` (finite as p → 1), ``E = w (dM/dv) p r``; a class with no target
    weight contributes exactly 0 even where its logit is ``−inf``. Without ``grad`` (the loss alone) B and E are 0.
    """
    m, dm, m_partials = modulator(xp, t, params)
    gamma = _resolve_gamma(xp, t)
    w = t.weight
    epsilon = params.epsilon
    # M constant (γ = 0, or truncated): B = E = 0, numbers, so the kernels skip their terms (cross entropy's cost)
    constant = not grad or (isinstance(dm, float) and dm == 0.0)
    u_safe = None if constant else xp.maximum(t.u, math.log(tiny(xp, t.u)))
    # E first: its temporaries die before f, A and B exist (fewer arrays alive at once)
    e: Any = 0.0 if constant else w * dm * t.p * neg_log_over(xp, u_safe, t.one_minus_p)
    a = -w * m
    # a class of no weight adds exactly 0, even where log p is -inf (a -inf logit, or a class `where` leaves out)
    f = a * (t.u if isinstance(w, float) else xp.where(w != 0.0, t.u, 0.0))
    poly: Any = 0.0
    if not is_zero(epsilon):
        poly = t.target * xp.exp((gamma + 1.0) * t.v)  # y (1 − p)^(γ+1)
        f = f + epsilon * poly
        if grad:
            e = e + epsilon * t.target * (gamma + 1.0) * t.p * xp.exp(gamma * t.v)
    if not grad:
        return TermsOut(f, a, 0.0, 0.0)

    def partial_b() -> Any:  # the dense kernel never reads it (E is finite here): one array fewer there
        b = 0.0 if constant else -w * dm * u_safe
        return b if is_zero(epsilon) else b + epsilon * (gamma + 1.0) * poly

    b = 0.0 if constant and is_zero(epsilon) else Lazy(partial_b)

    def log_p_safe() -> Array:  # the partials' (γ = 0 computes none for the gradient)
        return xp.maximum(t.u, math.log(tiny(xp, t.u))) if u_safe is None else u_safe

    def through_m(name: str) -> Callable[[], Array]:  # −w ∂M/∂θ log p
        return lambda: -w * m_partials[name]() * log_p_safe()

    partials = {
        "alpha": lambda: -t.target * m * log_p_safe(),
        "gamma": lambda: through_m("gamma")() + epsilon * poly * t.v,
        "epsilon": lambda: poly,
        "reduced_threshold": through_m("reduced_threshold"),
        # M depends on p only: ∂f/∂y = −α M log p + ε (1 − p)^(γ+1)
        TARGETS: lambda: -t.alpha * m * t.u + (0.0 if is_zero(epsilon) else epsilon * xp.exp((gamma + 1.0) * t.v)),
    }
    return TermsOut(f, a, b, e, partials=partials)


focal_terms.loss_only = True  # type: ignore[attr-defined]  # takes grad=False


@dataclass(frozen=True)
class NormalizedTargetKernel:
    """``L_i / max(Σ_j M_j, eps)`` over the rows that are not ignored (smp's ``normalized``).

    The sum S couples the rows, so the VJP has a second term:
    ``d/dz = D_i g_i / S − (Σ_k g_k L_k / S) dM_i/dz / S``, and so has a hyperparameter's
    (``Σ_i g_i ∂f_i/∂θ / S − (Σ_k g_k L_k / S) ∂S/∂θ / S``).
    """

    inner: TargetKernel

    def forward(self, xp: Any, z: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                wanted: Wanted) -> tuple[Array, tuple[Array, ...]]:
        inner = self.inner
        spec = bind(inner.spec, params)
        rows = inner.parts(xp, z, aux, spec)
        t = rows.terms
        out = focal_terms(xp, t, spec.params)
        loss, grad = inner.masks(xp, rows, out.f, inner.row_grad(xp, rows, out.a, read(out.b), out.e, None))
        m, dm, m_partials = modulator(xp, t, spec.params)
        odds = xp.exp(t.u - t.v)
        m = xp.ones_like(t.u) * m  # a row array even when M is the constant 1 (γ = 0)
        row_grad = inner.row_grad(xp, rows, 0.0, dm, dm * odds, None)
        m_rows, m_grad = inner.masks(xp, rows, m, row_grad)
        total = xp.maximum(xp.sum(m_rows), float(xp.finfo(z.dtype).eps))
        f_partials = inner.row_partials(xp, out.partials, wanted, rows)
        s_partials = inner.row_partials(xp, {**{k: (lambda: xp.zeros_like(t.u)) for k in out.partials}, **m_partials},
                                        wanted, rows)
        return loss / total, (grad, m_grad, loss, total, *f_partials, *s_partials)

    def vjp(self, xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, *,
            consume: bool = False) -> Grads:
        grad, m_grad, loss, total, *partials = residuals
        axis = self.inner.spec.axis
        share = xp.sum(cotangent * loss) / (total * total)  # Σ_k g_k L_k / S, L_k the normalized loss
        half = len(partials) // 2
        f_grads = reduce_partials(xp, wanted, expand(xp, cotangent / total, axis), tuple(partials[:half]))
        s_grads = reduce_partials(xp, wanted, share, tuple(partials[half:]))
        grads = tuple(None if f is None else f - s for f, s in zip(f_grads, s_grads))
        return expand(xp, cotangent / total, axis) * grad - share * m_grad, grads


@document
def softmax_focal_loss(
    logits: Array,
    targets: Array,
    *,
    alpha: float | Sequence[float] | Array | None = None,
    gamma: float | Sequence[float] | Array | Any = 2.0,
    axis: int = -1,
    ignore_index: int | None = None,
    reduction: str = "mean",
    weight: Array | float | None = None,
    normalizer: Array | float | None = None,
    label_smoothing: float = 0.0,
    from_logits: bool = True,
    reduced_threshold: float | None = None,
    normalized: bool = False,
    where: Array | None = None,
    detach_modulator: bool = False,
) -> Array:
    r"""Softmax focal loss for multi-class classification (Lin et al., 2017).

    .. math::

        \log p_c = z_c - \operatorname{LSE}(z),\qquad
        \mathrm{FL}(z, t) = -\alpha_t\,(1-p_t)^{\gamma_t} \log p_t

    and for dense targets ``y`` (one-hot, soft or label-smoothed)
    ``FL(z, y) = −Σ_c y_c α_c (1 − p_c)^γ_c log p_c``. With ``γ = 0`` and no α it is the cross entropy.

    Args:
        logits: real floating array with the classes along ``axis``.
        targets: integer class indices of ``logits``' shape without ``axis``, values in [0, C) or
            ``ignore_index``; or floating class probabilities of ``logits``' shape.
        alpha: ``None`` (no weighting; the default), a scalar in [0, 1] that scales every class
            (Keras' semantics; kornia and MONAI instead read a scalar as ``[1 − α, α, …]``), or
            per-class weights ``≥ 0`` of length C (a sequence or an array of the logits' library;
            e.g. :func:`focal.class_balanced_alpha`).
        gamma: focusing parameter ``γ ≥ 0`` (default 2); a per-class vector (``γ_t`` of the target
            class; focal-loss (TF)); or :data:`focal.flsd53` (γ = 5 where p_t < 0.2, else 3,
            Mukhoti et al. 2020).
        axis: the class axis. Default -1 (``focal.torch`` criteria use 1, as ``nn.CrossEntropyLoss``).
        ignore_index: a label value whose rows are left out of the loss and of the mean's count.
        reduction: ``"none"`` (per row), ``"mean"`` (over rows that are not ignored) or ``"sum"``.
        weight: weights broadcastable to the per-row loss shape (logits' shape without ``axis``).
        normalizer: divide the sum by ``max(normalizer, eps)`` instead (mmdet's ``avg_factor``).
        label_smoothing: ``y ← y (1 − ls) + ls / C``, in [0, 1).
        from_logits: ``False`` takes probabilities, clipped to ``[eps, 1 − eps]`` and renormalised.
        reduced_threshold: reduced focal loss (segmentation_models_pytorch): the modulator is 1
            where ``p_t < th`` and ``((1 − p_t)/th)^γ`` above.
        normalized: divide each row's loss by ``Σ_rows (1 − p_t)^γ`` (smp's ``normalized``;
            integer labels only); the gradient includes the normaliser's.
        detach_modulator: compute the modulating factor from the logits held constant
            (``stop_gradient``/``detach``), as a PyTorch user writes with ``(1 − p_t.detach()) ** γ``: the loss's
            value is unchanged; its derivatives w.r.t. the logits, of every order, treat ``(1 − p_c)^γ`` (and
            ``normalized``'s sum of them) as a constant (``d/dz = α_t (1 − p_t)^γ (p − onehot(t))``); those w.r.t.
            γ, α, the threshold and soft targets still go through it. Default False (the loss's true gradient).

    Returns:
        An array of the input's library, device and dtype. The gradient w.r.t. ``logits`` is the
        analytic ``α_t F (p − onehot(t))`` with ``F = (1 − p_t)^γ (1 + γ p_t (−log p_t)/(1 − p_t))``,
        finite for every finite logit and ``γ ≥ 0``. Eagerly, labels outside [0, C) raise
        ``ValueError``; inside ``jax.jit`` or ``tf.function`` their rows are NaN.

    Matching other libraries (each checked by a test):
        Keras ``CategoricalFocalCrossentropy(alpha, gamma, from_logits=True)`` on one-hot targets is
        ``softmax_focal_loss(logits, onehot, alpha=alpha, gamma=gamma, reduction="none")``.
        kornia ``focal_loss(pred, target, alpha)`` and MONAI ``FocalLoss(use_softmax=True,
        to_onehot_y=True, alpha)`` read a scalar α as the vector ``[1 − α, α, …, α]``: pass that
        vector, with ``axis=1``. Their ``"none"`` keeps the class axis (sum it for ours) and their
        ``"mean"`` also divides by the number of classes; MONAI's ``"sum"`` is a sum over batch and
        classes of spatial means. segmentation_models_pytorch's ``exp(−CE)`` for ``p_t`` is wrong
        with class weights, label smoothing or soft targets; ours takes ``p_t`` from the softmax.

    References:
        Lin, Goyal, Girshick, He, Dollár. Focal Loss for Dense Object Detection. ICCV 2017.
    """
    return _plan_softmax_focal(logits, targets, alpha=alpha, gamma=gamma, axis=axis, ignore_index=ignore_index,
                               reduction=reduction, weight=weight, normalizer=normalizer,
                               label_smoothing=label_smoothing, from_logits=from_logits,
                               reduced_threshold=reduced_threshold, normalized=normalized, where=where,
                               detach_modulator=detach_modulator).loss()


@plans(softmax_focal_loss)
def _plan_softmax_focal(
    logits: Array, targets: Array, *, alpha: Any, gamma: Any, axis: Any, ignore_index: Any, reduction: str,
    weight: Any, normalizer: Any, label_smoothing: Any, from_logits: bool, reduced_threshold: Any, normalized: bool,
    where: Any, detach_modulator: bool,
) -> LossPlan:
    detach = check_flag("detach_modulator", detach_modulator)
    sc = prepare_softmax(logits, targets, axis=axis, alpha=alpha, gamma=gamma, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, reduction=reduction, weight=weight, normalizer=normalizer,
                         labels_only=normalized, where=where)
    th = None if reduced_threshold is None else sc.call.hyper(
        "reduced_threshold", reduced_threshold, low=0.0, high=1.0, low_open=True, high_open=True, differentiable=True)
    plan = sc.plan(focal_terms, FocalTerms(reduced_threshold=th, detach=detach), from_logits=from_logits)
    if normalized:
        if sc.labels is None:
            raise ValueError("normalized=True takes integer class indices without label smoothing")
        if not from_logits:
            raise ValueError("normalized=True takes logits (from_logits=True)")
        plan.kernel = NormalizedTargetKernel(cast(TargetKernel, plan.kernel))  # integer labels, logits
    return plan

"""``python -m focal [agree | demo | plot | bench]``.

- ``agree`` (the default): one batch's sigmoid and softmax focal losses and gradients on every
  installed backend, and their largest difference.
- ``demo``: cross entropy against focal loss on imbalanced digits, trained on every installed
  backend; a table and a precision-recall plot.
- ``plot``: a PNG of loss and gradient against p_t for chosen variants and gammas.
- ``bench``: time and memory of ours against every installed peer, one process per framework;
  ``--loop`` adds a user's first 30 training steps, ``--no-compiler`` runs everything as without a compiler.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

# what a command needs beyond focal itself, and the extra that installs it: {command: (extra, {module: package})}
_NEEDS = {
    "demo": ("demo", {"sklearn": "scikit-learn", "matplotlib": "matplotlib"}),
    "plot": ("demo", {"matplotlib": "matplotlib"}),
}


def _parser() -> argparse.ArgumentParser:
    from . import bench as _bench
    from . import frameworks as _frameworks
    from . import plot as _plot

    parser = argparse.ArgumentParser(prog="python -m focal", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("agree", help="the same batch on every installed backend (the default)")
    demo = commands.add_parser("demo", help="cross entropy vs focal loss on imbalanced digits, every backend")
    demo.add_argument("--backend", action="append", choices=_frameworks.NAMES,
                      help="train on this backend only (repeatable); default: every installed one")
    demo.add_argument("--steps", type=int, default=500, help="full-batch Adam steps (default 500)")
    demo.add_argument("--plot", default="focal-demo.png", help="where to write the precision-recall plot")
    demo.add_argument("--no-plot", action="store_true", help="print the table only")
    plot = commands.add_parser("plot", help="PNG of loss and gradient against p_t")
    plot.add_argument("--variant", action="append", choices=sorted(_plot.VARIANTS),
                      help="a variant to draw (repeatable); default sigmoid_focal_loss")
    plot.add_argument("--gamma", action="append", type=float,
                      help="a focusing parameter to draw (repeatable): γ, or the variant's own (γ+ of ASL, K of the "
                           "soft-truncated loss, β of QFL, ε of Poly-1 CE); default 0, 0.5, 1, 2, 5 as the paper's "
                           "Figure 1")
    plot.add_argument("--out", default="focal-curves.png", help="the PNG to write")
    bench = commands.add_parser("bench", help="time and memory against every installed peer")
    bench.add_argument("--framework", action="append", choices=_bench.FRAMEWORKS,
                       help="benchmark this framework (repeatable); default every installed one")
    bench.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    bench.add_argument("--shape", action="append", choices=sorted(_bench.SHAPES),
                       help="a named shape (repeatable); default the CPU ones, and the large ones on a GPU")
    bench.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16", "float64"))
    bench.add_argument("--variant", choices=("sigmoid", "softmax"), help="only the shapes of this variant")
    bench.add_argument("--warmup", type=int, help="calls before timing (default 3; --matrix 2)")
    bench.add_argument("--repeats", type=int, help="timed calls (default 11; --matrix 5)")
    bench.add_argument("--out", help="also write the report (markdown) here")
    bench.add_argument("--no-compiler", action="store_true",
                       help="as on a machine without a compiler: TORCHDYNAMO_DISABLE=1 in every child process")
    bench.add_argument("--loop", action="store_true",
                       help="also the first 30 training steps of the sigmoid loss, each in a fresh process")
    bench.add_argument("--matrix", action="store_true",
                       help="every loss and main option on every framework mode, against the framework's own cross "
                            "entropy and the peer (benchmarks/README.md)")
    bench.add_argument("--case", action="append", help="--matrix: the cases whose name holds this (repeatable)")
    bench.add_argument("--mode", action="append", choices=list(_matrix_modes()),
                       help="--matrix: this framework mode only (repeatable); default every installed one")
    bench.add_argument("--scale", type=float, default=1.0,
                       help="--matrix: this fraction of the default rows (65536 anchors, 2x256x512 pixels)")
    bench.add_argument("--memory", action="store_true", help="--matrix: also peak memory (a second process per mode)")
    bench.add_argument("--heatmap", help="--matrix: also draw the ratios into this PNG (needs matplotlib)")
    bench.add_argument("--json", help="--matrix: also write the cells here")
    bench.add_argument("--matrix-child", help=argparse.SUPPRESS)
    bench.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    bench.add_argument("--loop-child", help=argparse.SUPPRESS)
    return parser


def _matrix_modes() -> tuple[str, ...]:
    from .matrix_frameworks import MODES

    return tuple(MODES)


def _importable(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def _missing(args: argparse.Namespace) -> str | None:
    """What to install for this command, where something it needs is missing: a sentence naming the extra."""
    extra, modules = _NEEDS.get(args.command or "", ("", {}))
    needed = {m: package for m, package in modules.items()
              if not (m == "matplotlib" and getattr(args, "no_plot", False))}
    missing = [package for m, package in needed.items() if not _importable(m)]
    if not missing:
        return None
    return (f"python -m focal {args.command} needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: pip install \"focal-losses[{extra}]\"")


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides the table
    args = _parser().parse_args(argv)
    missing = _missing(args)
    if missing is not None:
        print(missing, file=sys.stderr)
        return 2
    if args.command in (None, "agree"):
        from .agree import agree

        agree()
    elif args.command == "demo":
        from . import demo

        results = demo.run(args.backend, steps=args.steps)
        print(demo.table(results))
        if not args.no_plot:
            demo.plot(results, args.plot)
            print(f"precision-recall curves: {args.plot}")
    elif args.command == "bench":
        from . import bench as _bench
        from . import bench_loop as _bench_loop

        if args.matrix or args.matrix_child:
            return _matrix(args)
        warmup, repeats = (3 if args.warmup is None else args.warmup), (11 if args.repeats is None else args.repeats)
        if args.child:
            print(_bench.child(args.framework[0], args.device, args.shape, args.dtype, warmup, repeats))
        elif args.loop_child:
            print(_bench_loop.child(args.loop_child))
        else:
            report = _bench.run(args.framework, args.device, args.shape, args.dtype, warmup, repeats,
                                args.variant, args.no_compiler)
            if args.loop:
                report += "\n\n" + _bench_loop.run(args.no_compiler)
            _report(report, args.out)
    else:
        from .plot import DEFAULT_GAMMAS, plot

        path = plot(args.out, args.variant or ("sigmoid_focal_loss",), args.gamma or DEFAULT_GAMMAS)
        print(f"loss and gradient against p_t: {path}")
    return 0


def _report(report: str, out: str | None) -> None:
    print(report)
    if out:
        with open(out, "w") as file:
            file.write(report + "\n")


def _matrix(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from . import bench as _bench
    from . import matrix

    warmup, repeats = (2 if args.warmup is None else args.warmup), (5 if args.repeats is None else args.repeats)
    if args.matrix_child:
        print(matrix.child(args.matrix_child, args.case, args.scale, warmup, repeats, args.device))
        return 0
    cells, failures = matrix.measure(args.mode, args.case, args.scale, warmup, repeats, args.memory, args.device)
    report = matrix.markdown(cells, args.scale, args.device)
    bandwidth = _bench._copy_bandwidth("torch", args.device) if importlib.util.find_spec("torch") else None
    if bandwidth:
        report += f"\n{bandwidth}\n"
    if failures:
        report += "\n\n## Modes that failed\n\n```\n" + "\n".join(failures) + "\n```\n"
    _report(report, args.out)
    if args.json:
        with open(args.json, "w") as file:
            json.dump([dataclasses.asdict(c) for c in cells], file, indent=1)
    if args.heatmap and cells:
        print(f"heat map: {matrix.heatmap(cells, args.heatmap)}")
    return 1 if failures else 0

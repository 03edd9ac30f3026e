#!/usr/bin/env bash
# The GPU check, in one command: the conformance suite's GPU cases (PyTorch, JAX, CuPy), then the GPU bench (large
# anchors and segmentation shapes, with the device's copy bandwidth and GB/s), then the matrix's GPU cells (every loss
# and option: PyTorch, JAX and CuPy, whose floor is the cross entropy written by hand in CuPy), into one markdown report.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [REPORT.md]      (default report: benchmarks/gpu-report.md)
#   bash benchmarks/gpu_check.sh --wheels                      (here, before: the wheels the GPU machine lacks)
#
# The GPU machine has CUDA PyTorch, JAX and CuPy but not array-api-compat and array-api-strict: --wheels puts their
# wheels (the versions installed here) in benchmarks/wheels/, which travels with the tree; the check installs
# them from there, without an index. --dry-run lists what the check would run, and on this machine's devices how many
# test cases that is; CI runs it (tests/test_commands.py).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
wheels=benchmarks/wheels

if [[ "${1:-}" == "--wheels" ]]; then
    mkdir -p "$wheels"
    # the versions installed here, which the suite passes with
    pins=$($python -c "import importlib.metadata as m; print(*(f'{d}=={m.version(d)}' for d in ('array-api-compat', 'array-api-strict')))")
    # shellcheck disable=SC2086 # one argument per pin
    $python -m pip download --no-deps --only-binary=:all: -d "$wheels" $pins
    ls "$wheels"
    exit 0
fi

dry=0
if [[ "${1:-}" == "--dry-run" ]]; then dry=1; shift; fi
report=${1:-benchmarks/gpu-report.md}

# the GPU cases: every test whose library runs on a GPU (ids torch-cuda, jax-gpu, cupy-cuda, tensorflow-gpu)
tests=(-m pytest -q -p no:cacheprovider tests -k "torch-cuda or jax-gpu or cupy-cuda or tensorflow-gpu")
bench=(-m focal bench --device cuda --framework torch --framework jax --shape anchors-large
       --shape segmentation-large --warmup 2 --repeats 5)
# every loss and option of the matrix on the GPU: PyTorch without a compiler, JAX's jit (a compile per case and
# implementation; torch.compile's would not fit the check's minutes) and CuPy, with the copy bandwidth
matrix=(-m focal bench --matrix --device cuda --mode "torch eager" --mode jax.jit --mode cupy --warmup 2 --repeats 5)

if (( dry )); then
    echo "would install: $wheels/*.whl (pip --no-index --no-deps)"
    echo "would run: $python ${tests[*]}"
    echo "would run: $python ${bench[*]}"
    echo "would run: $python ${matrix[*]}"
    echo "would write: $report"
    set +e
    listing=$($python "${tests[@]}" --collect-only 2>&1)
    rc=$?
    set -e
    if (( rc != 0 && rc != 5 )); then  # 5: nothing collected, as on a machine without a GPU
        echo "$listing" | tail -n 20
        echo "collecting the tests failed (exit $rc)"
        exit 1
    fi
    echo "GPU test cases on this machine: $(grep -c '::' <<<"$listing" || true)"
    exit 0
fi

shopt -s nullglob
found=("$wheels"/*.whl)
if (( ${#found[@]} )); then
    $python -m pip install --quiet --no-index --no-deps "${found[@]}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=3

start=$(date +%s)
tests_out=$(mktemp)
set +e
timeout 300 $python "${tests[@]}" -rfE >"$tests_out" 2>&1
tests_rc=$?
bench_out=$(timeout 240 $python "${bench[@]}" 2>&1)
bench_rc=$?
matrix_out=$(timeout 240 $python "${matrix[@]}" 2>&1)
matrix_rc=$?
set -e
{
    echo "# GPU check"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
    $python -c "import importlib; [print(m, getattr(importlib.import_module(m), '__version__', '?')) for m in ('torch', 'jax', 'cupy', 'array_api_compat', 'array_api_strict')]" 2>&1 || true
    echo '```'
    echo
    echo "## Conformance suite, GPU cases (exit $tests_rc)"
    echo
    echo '```'
    tail -n 40 "$tests_out"
    echo '```'
    echo
    echo "## Bench (exit $bench_rc)"
    echo
    echo "$bench_out"
    echo
    echo "## Matrix (exit $matrix_rc)"
    echo
    echo "$matrix_out"
    echo
    echo "Took $(( $(date +%s) - start )) s."
} >"$report"
rm -f "$tests_out"
echo "report: $report (tests exit $tests_rc, bench exit $bench_rc, matrix exit $matrix_rc)"
(( tests_rc == 0 && bench_rc == 0 && matrix_rc == 0 ))

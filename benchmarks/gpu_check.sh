#!/usr/bin/env bash
# The GPU check, in one command, within ten minutes on one GPU: what GPU users run (tests/test_gpu.py: every matrix
# case under torch.cuda.set_sync_debug_mode("error") and equal to the CPU, a training step captured by a CUDA graph,
# autocast, the compiled path, JAX reading nothing back) with the CPU's stand-ins for it (tests/test_devices.py), the
# conformance suite's GPU cases (PyTorch, JAX, CuPy), the GPU bench (large anchors and segmentation shapes, with the
# device's copy bandwidth and GB/s), the matrix's GPU cells (every loss and option: PyTorch, JAX and CuPy, whose floor
# is the cross entropy written by hand in CuPy) and the fused linear benchmark, into one markdown report.
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

# what GPU users run, and the stand-ins; then every test whose library runs on a GPU (ids torch-cuda, jax-gpu,
# cupy-cuda, tensorflow-gpu)
gpu=(-m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_devices.py)
tests=(-m pytest -q -p no:cacheprovider tests -k "torch-cuda or jax-gpu or cupy-cuda or tensorflow-gpu")
bench=(-m focal bench --device cuda --framework torch --framework jax --shape anchors-large
       --shape segmentation-large --warmup 2 --repeats 5)
# every loss and option of the matrix on the GPU: PyTorch without a compiler, JAX's jit (a compile per case and
# implementation; torch.compile's would not fit the check's minutes) and CuPy, with the copy bandwidth
matrix=(-m focal bench --matrix --device cuda --mode "torch eager" --mode jax.jit --mode cupy --warmup 2 --repeats 5)
# the fused linear + focal loss against the unfused one and the framework's cross entropy (PyTorch and JAX)
linear=(benchmarks/linear.py --device cuda --framework torch --framework jax --repeats 3)
# and at a language model's vocabulary, against PyTorch's own chunked F.linear_cross_entropy (issue 32's bar; our
# blocks of classes there)
linear_wide=(benchmarks/linear.py --device cuda --framework torch --rows 2048 --classes 128000 --repeats 3)

if (( dry )); then
    echo "would install: $wheels/*.whl (pip --no-index --no-deps)"
    echo "would run: $python ${gpu[*]}"
    echo "would run: $python ${tests[*]}"
    echo "would run: $python ${bench[*]}"
    echo "would run: $python ${matrix[*]}"
    echo "would run: $python ${linear[*]}"
    echo "would run: $python ${linear_wide[*]}"
    echo "would write: $report"
    set +e
    listing=$($python "${tests[@]}" --collect-only 2>&1)
    rc=$?
    gpu_listing=$($python "${gpu[@]}" --collect-only 2>&1)
    gpu_rc=$?
    set -e
    if (( (rc != 0 && rc != 5) || gpu_rc != 0 )); then  # 5: nothing collected, as on a machine without a GPU
        echo "$listing" | tail -n 20
        echo "$gpu_listing" | tail -n 20
        echo "collecting the tests failed (exit $rc, $gpu_rc)"
        exit 1
    fi
    echo "test cases of what GPU users run, and their stand-ins: $(grep -c '::' <<<"$gpu_listing" || true)"
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
gpu_out=$(mktemp)
tests_out=$(mktemp)
set +e
# each step's limit keeps the whole under ten minutes (the slowest step, the matrix, compiles JAX's cells)
timeout 150 $python "${gpu[@]}" -rfEs >"$gpu_out" 2>&1
gpu_rc=$?
timeout 150 $python "${tests[@]}" -rfE >"$tests_out" 2>&1
tests_rc=$?
bench_out=$(timeout 60 $python "${bench[@]}" 2>&1)
bench_rc=$?
matrix_out=$(timeout 150 $python "${matrix[@]}" 2>&1)
matrix_rc=$?
linear_out=$(timeout 60 $python "${linear[@]}" 2>&1)
linear_rc=$?
linear_wide_out=$(timeout 60 $python "${linear_wide[@]}" 2>&1)
linear_wide_rc=$?
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
    echo "## What GPU users run: tests/test_gpu.py, tests/test_devices.py (exit $gpu_rc)"
    echo
    echo '```'
    tail -n 60 "$gpu_out"
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
    echo "## Fused linear + focal loss (exit $linear_rc)"
    echo
    echo "$linear_out"
    echo
    echo "## Fused linear + focal loss, 128000 classes (exit $linear_wide_rc)"
    echo
    echo "$linear_wide_out"
    echo
    echo "Took $(( $(date +%s) - start )) s."
} >"$report"
rm -f "$gpu_out" "$tests_out"
echo "report: $report (GPU tests exit $gpu_rc, conformance exit $tests_rc, bench exit $bench_rc, matrix exit" \
     "$matrix_rc, linear exit $linear_rc, wide vocabulary exit $linear_wide_rc)"
(( gpu_rc == 0 && tests_rc == 0 && bench_rc == 0 && matrix_rc == 0 && linear_rc == 0 && linear_wide_rc == 0 ))

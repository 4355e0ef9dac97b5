#!/usr/bin/env bash
# One prepared run on a lent GPU machine (README, "GPU"): the `cuda13` extra installed offline from what the
# machine holds, the network benchmark, the test suite on the GPU backend (one line per test, so a run cut off
# by its limit still names its failures), the sweep benchmark and a few fresh first calls. Each step has its own
# time limit (0 skips it), so a slow one cannot starve the rest; everything goes to ${OUT:-benchmarks/results/gpu}.
#     OUT=/tmp/gpu bash benchmarks/device_check.sh
#     NETS=dronet NET_BATCHES="128 1024" SWEEP_S=0 FIRST_S=0 bash benchmarks/device_check.sh   # a short run
#     NET_ARGS="--float-precision highest" ...   # the float32 baseline at full float32, like the exact paths
#     NETS=all NET_S=500 ...   # every bundled network (the zoo's two and tests/data/external's eight; needs onnx)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
step() { local s=$1; shift; [ "$s" = 0 ] && return; echo "== $(date -u +%T) $* (limit ${s} s)"; timeout "$s" "$@"; echo "== rc $?"; }
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  $py -m pip --version
  $py -m pip list 2>/dev/null | grep -i -E "^(jax|jaxlib|jax-cuda13-plugin|numpy|setuptools|pytest|hypothesis) "
  # the extra as a user installs it, without an index: pip only checks that what the image holds satisfies it
  step "${INSTALL_S:-120}" $py -m pip install --no-index --no-build-isolation -e ".[cuda13]" 2>&1 | tail -n 5
  step 60 $py -c "import jax, jaxpulp; print('jax', jax.__version__, jax.default_backend(), jax.devices())"
} > "$out/env.txt" 2>&1
cat "$out/env.txt"
step "${NET_S:-200}" $py benchmarks/network.py --no-fresh --nets ${NETS:-dronet mobilenet} \
  --batches ${NET_BATCHES:-1 16 128 1024} --reps "${NET_REPS:-5}" ${NET_ARGS:-} --json "$out/network.json" 2>&1 \
  | grep -v "cuda_timer.cc" | tee "$out/network.txt"
xdist=(); [ "${TEST_WORKERS:-14}" != 0 ] && xdist=(-n "${TEST_WORKERS:-14}")  # pytest-xdist processes
step "${TEST_S:-240}" $py -m pytest -v -p no:cacheprovider -W ignore::DeprecationWarning "${xdist[@]}" \
  ${TESTS:-tests} > "$out/tests_verbose.txt" 2>&1
grep -E "FAILED|ERROR|passed|failed" "$out/tests_verbose.txt" | sort | uniq | tail -n 40 | tee "$out/tests.txt"
step "${SWEEP_S:-90}" $py benchmarks/sweep.py ${SWEEP_ARGS:---quick} --json "$out/sweep.json" 2>&1 | tee "$out/sweep.txt"
for a in "dronet packed 16" "dronet values 16" "mobilenet packed 16" "mobilenet values 16"; do
  step "${FIRST_S:-25}" $py benchmarks/network.py --first-call $a
done 2>&1 | tee "$out/first_call.txt"

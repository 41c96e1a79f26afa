#!/usr/bin/env bash
# The native trainer on one GPU, in one short command (docs/gpu.md):
#   scripts/gpu_check.sh OUTDIR [--shape NAME]... [--budget SECONDS]   ->  OUTDIR/gpu_check.json, gpu_check.log
#   scripts/gpu_check.sh --wheels                                       (here, with PyPI: the wheels to carry)
# On the GPU machine it needs python3 with torch, transformers and peft (and what they bring: numpy, pyyaml, tqdm,
# psutil, safetensors, tokenizers) and pyarrow; what else mathfirst imports it installs from the wheels in
# runs/gpu-wheels, into a folder of its own, and runs mathfirst from this checkout (PYTHONPATH), fetching nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
wheels=${GPU_CHECK_WHEELS:-$root/runs/gpu-wheels}
# module: the wheels that bring it (pure Python, but for pydantic-core: one wheel per Python version)
groups=(
  "pydantic:pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0"
  "math_verify:math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2"
  "rich:rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0"
)
needed="torch transformers peft pyarrow yaml tqdm psutil tokenizers safetensors"  # not carried: pyarrow is ~40 MB

if [ "${1:-}" = --wheels ]; then
  mkdir -p "$wheels"
  for group in "${groups[@]}"; do
    for version in 3.10 3.11 3.12 3.13; do
      # shellcheck disable=SC2086  # one word per wheel
      "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$wheels" ${group#*:}
    done
  done
  echo "wheels in $wheels ($(du -sh "$wheels" | cut -f1)): carry it to the GPU machine with the checkout"
  exit
fi
out=${1:?usage: scripts/gpu_check.sh OUTDIR [--shape NAME]... [--budget SECONDS] | scripts/gpu_check.sh --wheels}
shift

missing() {  # the modules of $@ this Python cannot import
  "$python" -c 'import importlib.util, sys; print(*(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' "$@"
}
absent=$(missing $needed)
if [ -n "$absent" ]; then
  echo "gpu_check: this Python lacks $absent, which the check does not carry" >&2
  exit 2
fi
site=""
install=()
for group in "${groups[@]}"; do
  if [ -n "$(missing "${group%%:*}")" ]; then
    # shellcheck disable=SC2206  # one word per wheel
    install+=(${group#*:})
  fi
done
if [ ${#install[@]} -eq 0 ]; then
  echo "gpu_check: nothing to install"
else
  site=$(mktemp -d)
  "$python" -m pip install -q --no-index --no-deps --no-compile --find-links "$wheels" --target "$site" "${install[@]}"
  echo "gpu_check: installed from $wheels into $site: ${install[*]}"
fi
export PYTHONPATH="$root${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m mathfirst.bench.gpu_check "$out" "$@"

#!/usr/bin/env bash
# The paper-settings benchmark and the training-speed benchmark on one GPU machine, with the JAX
# backend, in one go. Small datasets leave a GPU mostly idle, so the datasets are trained by
# parallel worker processes that share one logs folder (rows are written under a file lock).
#
#   benchmarks/run_gpu_benchmarks.sh DATA_DIR OUT_DIR [SECONDS]
#
# DATA_DIR holds the datasets (e.g. from ../shared/tools/get_ucr_archive.sh), OUT_DIR receives
# paper_settings.tar.gz (the result logs) and the text outputs; SECONDS bounds the training
# (default 420): rows finished by then are kept, and a later call continues from them.
set -uo pipefail
data_dir=${1:?usage: run_gpu_benchmarks.sh DATA_DIR OUT_DIR [SECONDS]}
out=${2:?usage: run_gpu_benchmarks.sh DATA_DIR OUT_DIR [SECONDS]}
seconds=${3:-420}
here=$(cd "$(dirname "$0")/.." && pwd)
export KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
logs=$out/paper_settings
mkdir -p "$logs"

{ nvidia-smi -L; python3 -c "import keras, jax; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices())"; } > "$out/environment.txt" 2>&1

# one worker per dataset; override with e.g. DATASETS="Wine ArrowHead"
read -r -a datasets <<< "${DATASETS:-Beef OliveOil FaceFour Coffee GunPoint CBF ECG200 ItalyPowerDemand}"
started=$(date +%s)
for dataset in "${datasets[@]}"; do
  timeout "$seconds" python3 "$here/benchmarks/paper_settings.py" --datasets "$dataset" \
    --models lstmfcn alstmfcn --data-dir "$data_dir" --logs-dir "$logs" \
    --weights-dir /tmp/paper_weights > "/tmp/worker_$dataset.log" 2>&1 &
done
wait
echo "paper settings: $(( $(date +%s) - started )) s for ${#datasets[@]} parallel workers" >> "$out/environment.txt"
for dataset in "${datasets[@]}"; do
  echo "== $dataset"; grep -v "ep/s\|it/s" "/tmp/worker_$dataset.log" | tail -n 25
done > "$out/workers.txt"

[ -n "${SKIP_SPEED:-}" ] || timeout 150 python3 "$here/benchmarks/bench_training.py" --datasets GunPoint FordA --backends jax \
  --data-dir "$data_dir" --out "$out/bench_training_gpu.md" > /dev/null 2>> "$out/workers.txt"
tar -czf "$out/paper_settings.tar.gz" -C "$out" paper_settings && rm -r "$logs"

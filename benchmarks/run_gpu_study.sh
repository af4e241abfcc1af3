#!/usr/bin/env bash
# The reproduction study's slice for one lent GPU window (15 minutes of device time in all, at
# most 10 per command), with the JAX backend. Small UCR datasets leave a GPU mostly idle, so
# WORKERS shards of the study (benchmarks/reproduce.py --shard i/WORKERS) train at once; each
# stops starting loop calls after MINUTES and stops its running call then (it resumes from its
# snapshot in a later window). The results already committed in Results/ours travel with the
# working tree, so finished runs are skipped and a window only adds runs.
#
#   bash benchmarks/run_gpu_study.sh DATA_DIR OUT_DIR [MINUTES] [WORKERS]
#
# DATA_DIR holds the datasets of reproduce.py's GPU list (30 UCR datasets, about 10 MB: copy them
# from the archive into the git-ignored archive/ folder and carry it). The device image has JAX
# but not Keras: carry its wheels in .whl/ (see the device notes: keras, namex, optree; aeon for
# the report's diagram); they are installed to /tmp/site first. OUT_DIR receives ours.tar.gz
# (Results/ours after the window, to unpack over the checkout), workers.txt and environment.txt.
# At 2000 epochs the window finishes about 100 runs (3 of the 30 datasets): earlier H200 runs
# took about 5 minutes for 48 paper-setting runs with 8 processes.
#
# Example (device tool): command "bash benchmarks/run_gpu_study.sh archive $OUT 7 12",
# carry ["archive", ".whl"], timeout_s 560.
set -uo pipefail
data_dir=${1:?usage: run_gpu_study.sh DATA_DIR OUT_DIR [MINUTES] [WORKERS]}
out=${2:?usage: run_gpu_study.sh DATA_DIR OUT_DIR [MINUTES] [WORKERS]}
minutes=${3:-7}
workers=${4:-12}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
if [ -d .whl ] && compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
mkdir -p "$out"

{ nvidia-smi -L; python3 -c "import keras, jax; print('keras', keras.__version__, 'jax', \
jax.__version__, jax.devices())"; } > "$out/environment.txt" 2>&1

started=$(date +%s)
for i in $(seq 1 "$workers"); do
  python3 benchmarks/reproduce.py --datasets gpu --shard "$i/$workers" --max-minutes "$minutes" \
    --data-dir "$data_dir" --work-dir /tmp/study_work --no-report > "/tmp/study_worker_$i.log" 2>&1 &
done
wait
echo "study: $(( $(date +%s) - started )) s with $workers workers" >> "$out/environment.txt"
for i in $(seq 1 "$workers"); do
  echo "== worker $i"; grep -v "ep/s\|it/s\|oneDNN\|absl" "/tmp/study_worker_$i.log" | tail -n 40
done > "$out/workers.txt"

# the report is rebuilt where the results land too; here it is a first look (needs aeon)
python3 benchmarks/reproduce.py --report-only >> "$out/workers.txt" 2>&1 || \
  echo "report not built here" >> "$out/workers.txt"
tar -czf "$out/ours.tar.gz" -C Results ours

"""--executor ray, for real: a private Ray on this machine (started once for the module), real
data, real training, a worker process killed with SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import all_datasets_training as loop_script
from utils.executors import start_local_ray
from utils.experiments import Run, group_into_packs

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ["Chinatown", "ItalyPowerDemand", "SmoothSubspace"]
MODELS = ["lstmfcn", "alstmfcn"]
# Columns that differ between two trainings of the same run: when and how fast, where.
UNEQUAL_COLUMNS = {"timestamp", "train_seconds", "seconds_per_epoch", "weights_file"}


@pytest.fixture(scope="module")
def local_ray():
    ray = start_local_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def broken_dataset(tmp_path_factory) -> Path:
    """A dataset whose training file has a bad value on line 2: its runs fail."""
    folder = tmp_path_factory.mktemp("data") / "Broken"
    folder.mkdir()
    (folder / "Broken_TRAIN.tsv").write_text("1\t0.5\t0.25\n2\tabc\t0.1\n")
    (folder / "Broken_TEST.tsv").write_text("1\t0.5\t0.25\n")
    return folder


def grid_flags(folder: Path, *datasets: str, epochs: int = 2) -> list[str]:
    return ["--datasets", *DATASETS, *datasets, "--models", *MODELS, "--cells", "8",
            "--epochs", str(epochs), "--no-progress", "--weights-dir", str(folder / "weights"),
            "--logs-dir", str(folder / "logs")]


def logged_rows(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Every row of the folder's logs by (dataset, model); a duplicate row fails the test."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for log in sorted((folder / "logs").glob("*_cells_results.csv")):
        with log.open(newline="") as handle:
            for row in csv.DictReader(handle):
                key = (row["dataset"], row["model"])
                assert key not in rows, f"{key} logged twice in {log}"
                rows[key] = row
    return rows


def our_descendants() -> list[int]:
    """PIDs of the processes this test process started, directly or not (Ray's among them)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])

    def descends_from_us(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return [pid for pid in parents if descends_from_us(pid)]


def ray_task_processes(name: str) -> list[int]:
    """PIDs of our Ray workers running the task ``name`` (Ray names such a process
    ``ray::<name>`` while it runs the task)."""
    return [pid for pid in our_descendants() if _title(pid) == f"ray::{name}"]


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode().strip()
    except OSError:
        return ""


def listening_addresses(pids: list[int]) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the TCP sockets ``pids`` listen on."""
    inodes = set()
    for pid in pids:
        for descriptor in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.append(fields[1].split(":")[0])
    return addresses


def test_the_local_ray_listens_on_loopback_only(local_ray):
    loopback = {"0100007F",  # 127.0.0.1
                "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
                "00000000000000000000000001000000"}  # ::1
    addresses = listening_addresses(our_descendants() + [os.getpid()])
    assert len(addresses) >= 3  # at least the GCS, the raylet and this driver's core worker
    assert set(addresses) <= loopback, addresses


def test_ray_logs_the_same_rows_as_local(local_ray, tmp_path, broken_dataset, capsys):
    # The local grid runs with the threads a one-CPU Ray task gets, so that both sum floats in
    # the same order and the rows are equal to the last digit.
    local = subprocess.run(
        [sys.executable, str(ROOT / "all_datasets_training.py"), "--executor", "local",
         *grid_flags(tmp_path / "local", str(broken_dataset))],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
    )
    assert local.returncode == 1, local.stderr  # the broken dataset's runs failed
    code = loop_script.main(["--executor", "ray", "--cpus-per-run", "1",
                             *grid_flags(tmp_path / "ray", str(broken_dataset))])
    assert code == 1
    output = capsys.readouterr().out
    assert "8 of 8 runs to do (ray executor)" in output
    assert "grid: 6/8 done, 0 running, 2 failed" in output  # the one overall line, at the end

    local_rows, ray_rows = logged_rows(tmp_path / "local"), logged_rows(tmp_path / "ray")
    assert sorted(ray_rows) == sorted(local_rows)
    assert len(ray_rows) == 8
    for key, local_row in local_rows.items():
        ray_row = ray_rows[key]
        if key[0] == "Broken":  # logged with its error, as locally
            assert "Broken_TRAIN.tsv" in ray_row["error"] and ray_row["status"] == "failed"
        else:
            assert ray_row["error"] == "" and ray_row["status"] == "trained"
            assert float(ray_row["test_accuracy"]) > 0.5
        differing = {column for column in local_row if local_row[column] != ray_row[column]}
        assert differing <= UNEQUAL_COLUMNS, (key, differing)

    # Files of the same shape in the same places; identical training histories.
    local_files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*")
                         if p.is_file() and not p.name.endswith(".lock"))
    ray_files = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*")
                       if p.is_file() and not p.name.endswith(".lock"))
    assert ray_files == local_files and len(ray_files) == 2 + 2 * 6
    for sidecar in (tmp_path / "ray" / "weights").rglob("*.json"):
        ray_sidecar = json.loads(sidecar.read_text())
        local_sidecar = json.loads((tmp_path / "local" / sidecar.relative_to(tmp_path / "ray"))
                                   .read_text())
        assert ray_sidecar["history"] == local_sidecar["history"]
        assert set(ray_sidecar) == set(local_sidecar)


def test_a_killed_worker_is_retried_and_every_row_is_logged_once(local_ray, tmp_path):
    killed: list[int] = []
    grid_done = threading.Event()

    def kill_one_training_worker() -> None:
        while not grid_done.is_set():
            for pid in ray_task_processes("run_pack"):
                time.sleep(0.5)  # well inside its run
                if _title(pid) == "ray::run_pack":
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_training_worker)
    killer.start()
    try:
        code = loop_script.main(["--executor", "ray", "--max-retries", "2",
                                 *grid_flags(tmp_path, epochs=4)])
    finally:
        grid_done.set()
        killer.join()
    assert killed, "no worker was caught running a unit"
    assert not Path(f"/proc/{killed[0]}").exists()
    assert code == 0
    rows = logged_rows(tmp_path)
    assert sorted(rows) == sorted((d, m) for d in DATASETS for m in MODELS)
    assert all(row["error"] == "" and row["epochs_run"] == "4" for row in rows.values())
    assert list(tmp_path.rglob(".*partial-*")) == [] and list(tmp_path.rglob("*.resume")) == []


def test_runs_that_differ_only_in_seed_share_a_pack():
    runs = [Run(dataset, "lstmfcn", cells, seed) for cells in (8, 64)
            for dataset in ("Coffee", "GunPoint") for seed in (0, 1, 2)]
    packs = group_into_packs(runs, pack_size=2)
    assert [[(r.dataset, r.cells, r.seed) for r in pack] for pack in packs] == [
        [("Coffee", 8, 0), ("Coffee", 8, 1)], [("Coffee", 8, 2)],
        [("GunPoint", 8, 0), ("GunPoint", 8, 1)], [("GunPoint", 8, 2)],
        [("Coffee", 64, 0), ("Coffee", 64, 1)], [("Coffee", 64, 2)],
        [("GunPoint", 64, 0), ("GunPoint", 64, 1)], [("GunPoint", 64, 2)],
    ]
    assert [len(pack) for pack in group_into_packs(runs)] == [1] * len(runs)


def test_the_script_ray_listens_on_loopback_stops_on_ctrl_c_and_a_restart_continues(tmp_path):
    """The user's path: the loop script starts its own Ray (no Ray imported before), listens on
    loopback only, stops cleanly on Ctrl-C with no Ray process left, and a second start trains
    only what is missing, so every row is there exactly once."""
    command = [sys.executable, str(ROOT / "all_datasets_training.py"), "--executor", "ray",
               "--cpus-per-run", "1", *grid_flags(tmp_path, epochs=30)]
    script = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)

    def script_family() -> list[int]:
        family = [pid for pid in our_descendants() if pid != script.pid]
        return [script.pid] + [pid for pid in family if _descends(pid, script.pid)]

    try:
        deadline = time.monotonic() + 300
        while not any(_title(pid) == "ray::run_pack" for pid in script_family()):
            assert script.poll() is None, script.communicate()
            assert time.monotonic() < deadline, "no Ray task started"
            time.sleep(0.2)
        loopback = {"0100007F", "0000000000000000FFFF00000100007F",
                    "00000000000000000000000001000000"}
        addresses = listening_addresses(script_family())
        assert len(addresses) >= 3 and set(addresses) <= loopback, addresses
        family = script_family()
        script.send_signal(signal.SIGINT)
        _, stderr = script.communicate(timeout=120)
    finally:
        if script.poll() is None:
            script.kill()
    assert script.returncode == 130, stderr
    assert "interrupted" in stderr
    time.sleep(2)  # Ray's processes exit after the driver
    assert [pid for pid in family if Path(f"/proc/{pid}").exists()
            and _title(pid).startswith(("ray::", "/"))] == []
    assert list(tmp_path.rglob(".*partial-*")) == []
    first = logged_rows(tmp_path)
    assert len(first) < len(DATASETS) * len(MODELS)  # stopped before the end

    restart = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert restart.returncode == 0, restart.stderr
    rows = logged_rows(tmp_path)  # fails on a duplicate row
    assert sorted(rows) == sorted((d, m) for d in DATASETS for m in MODELS)
    assert all(rows[key] == row for key, row in first.items())  # finished rows kept as they were
    assert f"{len(DATASETS) * len(MODELS) - len(first)} of" in restart.stdout


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
        if pid == ancestor:
            return True
    return False

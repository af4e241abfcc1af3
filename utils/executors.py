"""Where the units of work of a grid execute: in this process, or as Ray tasks.

An executor is given the loop script's per-unit function and a list of units (each a *pack*:
one or more runs that share dataset, model and cells) and yields each unit's result as it
finishes, in whatever order. It never writes files: the per-unit function returns rows and
weights as values and the caller, the *driver*, writes them. That keeps one writer of
``logs/`` and ``weights/`` however many machines train.

``InProcessExecutor`` (``--executor local``, the default)
    One unit after another, in this process.
``RayExecutor`` (``--executor ray``)
    One Ray task per unit with its CPU/GPU request (fractional GPUs share a device). A task
    whose worker process dies is run again, up to ``max_retries`` times; after that the unit is
    reported lost and the grid goes on. Without an address a private Ray instance starts on
    this machine, reachable from this machine only; with one (``auto``, ``host:port``,
    ``ray://host:port``) the grid joins that cluster and ships this repository's code to it.

Ray is an optional extra (``requirements-ray.txt``), imported only by ``RayExecutor``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.errors import ConfigurationError

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Not shipped to a cluster with the code: outputs, environments, history.
START_ATTEMPTS = 3  # tries to start a local Ray on a busy machine
NOT_SHIPPED = [".git", ".venv", "weights", "logs", "figures", "Results", "**/__pycache__",
               "*.weights.h5"]


@dataclass
class Finished:
    """One unit that is done: its ``result``, or the ``error`` that ended every try."""

    unit: Any
    result: Any = None
    error: BaseException | None = None


class InProcessExecutor:
    """Run each unit in this process, one after another."""

    def __init__(self) -> None:
        self.running_units: list[Any] = []

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.running_units = []

    def map(self, function: Callable[..., Any], units: Sequence[Any],
            *arguments: Any) -> Iterator[Finished]:
        """Yield ``Finished(unit, function(unit, *arguments))`` for each unit, in order."""
        for unit in units:
            self.running_units = [unit]
            try:
                result = function(unit, *arguments)
            except Exception as error:  # as a Ray task would: the unit is lost, the grid goes on
                finished = Finished(unit, error=error)
            else:
                finished = Finished(unit, result)
            self.running_units = []
            yield finished


MISSING_RAY = "--executor ray needs Ray, an optional extra: pip install -r requirements-ray.txt"


def check_ray_installed() -> None:
    """Raise a clear ``ConfigurationError`` when Ray is not installed (without importing it)."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigurationError(MISSING_RAY)


def import_ray(single_machine: bool = False) -> Any:
    """``import ray`` with usage statistics off, or a clear error when Ray is missing.

    ``single_machine``: Ray binds its servers to the node's address, and only its
    single-machine mode picks the loopback address, which keeps every port private to this
    machine. Ray reads the variable that chooses that mode once, when it is first imported, so
    a private Ray must ask for it here, before anything imports Ray.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a user's explicit setting wins
    if single_machine:
        if "ray" in sys.modules and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0":
            raise ConfigurationError(
                "Ray was imported before the private Ray could be set to listen on loopback "
                "only; start it before importing ray, or pass --ray-address")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ConfigurationError(MISSING_RAY) from None
    return ray


def start_local_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> Any:
    """Start a private Ray instance on this machine that listens on the loopback interface only,
    without dashboard or usage statistics. Returns the ``ray`` module."""
    ray = import_ray(single_machine=True)
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            ray.init(
                address="local",  # never attach to someone else's instance on this machine
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                # worker processes find this repository's code wherever the driver started
                runtime_env={"env_vars": {"PYTHONPATH": _python_path()}},
                log_to_driver=False,  # worker output goes to Ray's session logs
                logging_level="ERROR",
            )
            return ray
        except Exception as error:
            # Ray gives its node 30 s to register; a machine busy with other work can miss that
            if "timed out during startup" not in str(error) or attempt == START_ATTEMPTS:
                raise
            ray.shutdown()
    return ray


def join_ray_cluster(address: str) -> Any:
    """Connect to the Ray cluster at ``address`` and ship this repository's code to its
    workers (not the outputs, the virtual environment or git history). Returns ``ray``."""
    ray = import_ray()
    try:
        ray.init(
            address=address,
            runtime_env={"working_dir": str(REPOSITORY_ROOT), "excludes": NOT_SHIPPED},
            log_to_driver=False,
            logging_level="ERROR",
        )
    except ConnectionError as error:
        raise ConfigurationError(f"--ray-address {address}: {error}") from None
    return ray


def _python_path() -> str:
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(REPOSITORY_ROOT), *([existing] if existing else [])])


def worker_environment(cpus_per_unit: float, gpus_per_unit: float) -> dict[str, str]:
    """Environment variables of the processes that run units (the driver's own settings win).

    * TensorFlow uses as many threads as the task has CPUs (not all cores of the node, which
      several tasks share);
    * with a fraction of a GPU, TensorFlow and JAX take device memory as they need it instead
      of claiming the whole device at start-up;
    * the Keras backend and data folder of the driver apply to the workers too.
    """
    threads = str(max(1, math.ceil(cpus_per_unit)))
    environment = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": threads,
                   "TF_NUM_INTEROP_THREADS": threads}
    if 0 < gpus_per_unit < 1:
        environment.update(TF_FORCE_GPU_ALLOW_GROWTH="true", XLA_PYTHON_CLIENT_PREALLOCATE="false")
    environment.update({name: value for name, value in os.environ.items()
                        if name in environment or name in ("KERAS_BACKEND", "LSTMFCN_DATA_DIR")})
    return environment


class RayExecutor:
    """Run each unit as a Ray task.

    Parameters
    ----------
    address : str, optional
        A Ray cluster to join (``auto``, ``host:port``, ``ray://host:port``). Default: start a
        private Ray instance on this machine (or use the one this process already started).
    cpus_per_unit, gpus_per_unit : float
        The resources each task asks for (``--cpus-per-run``, ``--gpus-per-run``); fractional
        GPUs let several small runs share one device.
    max_retries : int
        How often a task whose worker process died is run again before the unit is lost.
        Errors raised by the per-unit function itself are not retried.
    num_cpus : int, optional
        CPUs of a locally started instance (default: all of this machine's).
    """

    def __init__(self, address: str | None = None, cpus_per_unit: float = 1.0,
                 gpus_per_unit: float = 0.0, max_retries: int = 2,
                 num_cpus: int | None = None) -> None:
        self.address = address
        self.cpus_per_unit = cpus_per_unit
        self.gpus_per_unit = gpus_per_unit
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self.running_units: list[Any] = []
        self._in_flight: dict[Any, Any] = {}  # task reference -> unit
        self._ray: Any = None
        self._started_here = False

    def __enter__(self) -> RayExecutor:
        check_ray_installed()  # reported now, before any work
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._ray is None:
            return
        self.cancel_running()
        if self._started_here:
            self._ray.shutdown()

    def _connect(self) -> Any:
        """Ray, started or joined on first use (a grid with nothing to do starts nothing)."""
        if self._ray is None:
            ray = import_ray(single_machine=self.address is None and "ray" not in sys.modules)
            if ray.is_initialized():  # e.g. a notebook or a test that started Ray already
                self._ray = ray
            elif self.address is None:
                self._ray, self._started_here = start_local_ray(self.num_cpus), True
            else:
                self._ray, self._started_here = join_ray_cluster(self.address), True
        return self._ray

    def cancel_running(self) -> None:
        """Stop the tasks still running (Ctrl-C, or the caller stopped early)."""
        for reference in self._in_flight:
            with contextlib.suppress(Exception):  # Ray may be going down with the same Ctrl-C
                self._ray.cancel(reference, force=True)
        self._in_flight.clear()
        self.running_units = []

    def capacity(self) -> int:
        """How many units the cluster can run at once with the requested resources."""
        resources = self._ray.cluster_resources()
        limits = [resources.get("CPU", 0.0) / self.cpus_per_unit] if self.cpus_per_unit else []
        if self.gpus_per_unit:
            limits.append(resources.get("GPU", 0.0) / self.gpus_per_unit)
        return max(1, int(min(limits, default=1) + 1e-9))

    def map(self, function: Callable[..., Any], units: Sequence[Any],
            *arguments: Any) -> Iterator[Finished]:
        """Submit one task per unit (no more at a time than the cluster can run, so that
        ``running_units`` is what runs) and yield each unit as its task finishes."""
        if not units:
            return
        ray = self._connect()
        task = ray.remote(function).options(
            num_cpus=self.cpus_per_unit, num_gpus=self.gpus_per_unit,
            max_retries=self.max_retries, retry_exceptions=False,
            runtime_env={"env_vars": worker_environment(self.cpus_per_unit, self.gpus_per_unit)},
        )
        shared = [ray.put(argument) for argument in arguments]  # sent to the cluster once
        waiting = list(units)
        while waiting or self._in_flight:
            while waiting and len(self._in_flight) < self.capacity():
                unit = waiting.pop(0)
                self._in_flight[task.remote(unit, *shared)] = unit
            self.running_units = list(self._in_flight.values())
            (reference,), _ = ray.wait(list(self._in_flight), num_returns=1)
            unit = self._in_flight.pop(reference)
            self.running_units = list(self._in_flight.values())
            try:
                finished = Finished(unit, ray.get(reference))
            except ray.exceptions.RayError as error:  # worker died on every try, or task error
                finished = Finished(unit, error=getattr(error, "cause", None) or error)
            yield finished


def make_executor(kind: str, *, ray_address: str | None = None, cpus_per_unit: float = 1.0,
                  gpus_per_unit: float = 0.0, max_retries: int = 2,
                  num_cpus: int | None = None) -> InProcessExecutor | RayExecutor:
    """The executor named by ``--executor`` (``local`` or ``ray``), to use in a ``with``."""
    if kind == "local":
        return InProcessExecutor()
    if kind == "ray":
        return RayExecutor(ray_address, cpus_per_unit, gpus_per_unit, max_retries, num_cpus)
    raise ConfigurationError(f"--executor must be local or ray; got {kind!r}")

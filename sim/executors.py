"""Executors: where the runs of a sweep execute, behind one interface.

- :class:`InProcessExecutor`: one run after the other in this process (debugging,
  profiling, policies registered at run time).
- :class:`ProcessExecutor`: a pool of local worker processes (the default; one per core).
- :class:`RayExecutor`: Ray core tasks on a Ray cluster (the ``ray`` extra).

Each maps a picklable function over a list of items and yields ``(index, result)`` pairs
as results arrive, in any order; the results of a sweep do not depend on that order, nor
on the executor or the number of workers. A worker that dies (killed, out of memory) does
not stop the others: its item is retried (Ray's ``max_retries``; the process pool retries
the items under way in a new pool) and, if it keeps dying, yielded as a
:class:`WorkerFailure`.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, ClassVar

from sim.errors import SimError

EXECUTORS = ("inprocess", "process", "ray")


@dataclass(frozen=True)
class WorkerFailure:
    """An item whose worker failed to return a result (its process died, or the function
    raised)."""

    error: str
    traceback: str | None = None


OnStart = Callable[[int], None]


def _noop(index: int) -> None:
    return None


def cpu_count() -> int:
    """CPUs this process may use (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Executor(abc.ABC):
    """Runs a function over items; subclasses say where."""

    name: ClassVar[str] = ""
    remote: ClassVar[bool] = False
    """Whether workers may run on other machines (then they send files back instead of
    writing into the results folder)."""
    workers: int = 1
    forks_driver: ClassVar[bool] = False
    """Whether workers are forked from this process (and so inherit what it has loaded)."""

    @abc.abstractmethod
    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any], on_start: OnStart | None = None
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(items[index]))`` for every item as results arrive.

        ``on_start(index)`` is called when an item is handed to a worker. A result that
        cannot be had (the worker died, ``fn`` raised) is a :class:`WorkerFailure`. Closing
        the iterator early (or an exception such as KeyboardInterrupt inside it) abandons
        the items under way.
        """

    def close(self) -> None:
        """Release workers and connections once the work is done (idempotent)."""
        return None

    def abort(self) -> None:
        """Stop now, abandoning the items under way (after Ctrl-C); idempotent."""
        self.close()

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _failure(exc: BaseException) -> WorkerFailure:
    from sim.runner import failure_line

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return WorkerFailure(failure_line(exc), text)


# --------------------------------------------------------------------------- in-process
class InProcessExecutor(Executor):
    """Every item in this process, one after the other, in order."""

    name = "inprocess"

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any], on_start: OnStart | None = None
    ) -> Iterator[tuple[int, Any]]:
        start = on_start or _noop
        for index, item in enumerate(items):
            start(index)
            try:
                result = fn(item)
            except Exception as exc:
                result = _failure(exc)
            yield index, result


# --------------------------------------------------------------------------- process pool
def _worker_init() -> None:
    """In each pool worker: leave Ctrl-C to the driver, and die with it (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
            if os.getppid() == 1:  # the driver died before the call above
                os._exit(1)
        except (OSError, AttributeError):
            pass


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel what is queued and kill the workers under way."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)


class ProcessExecutor(Executor):
    """A pool of ``workers`` local processes (default: one per CPU).

    Workers are forked where the platform allows it (so they start at once and inherit
    what the driver has loaded, registered policies included) and spawned elsewhere. They
    ignore Ctrl-C, which the driver handles, and on Linux die with the driver. If a worker
    dies, the pool is replaced and the items that were under way are run again one at a
    time, so that the item that kills its worker is found; it is given up (a
    :class:`WorkerFailure`) after killing ``max_attempts`` workers on its own.
    """

    name = "process"

    def __init__(
        self, workers: int | None = None, start_method: str | None = None, max_attempts: int = 3
    ) -> None:
        if workers is not None and workers < 1:
            raise SimError(f"--workers must be at least 1, got {workers}")
        self.workers = workers or cpu_count()
        methods = multiprocessing.get_all_start_methods()
        method = start_method or ("fork" if "fork" in methods else "spawn")
        if method not in methods:
            raise SimError(f"start method {method!r} is not available; known: {methods}")
        self.context = multiprocessing.get_context(method)
        self.forks_driver = method == "fork"  # type: ignore[misc]
        self.max_attempts = max(1, max_attempts)
        self._pool: cf.ProcessPoolExecutor | None = None

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=self.context, initializer=_worker_init
        )
        return self._pool

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any], on_start: OnStart | None = None
    ) -> Iterator[tuple[int, Any]]:
        start = on_start or _noop
        pending: deque[int] = deque(range(len(items)))
        suspects: set[int] = set()  # under way when a worker died: rerun one at a time
        deaths: Counter[int] = Counter()  # deaths while running alone
        inflight: dict[cf.Future[Any], int] = {}
        pool = self._pool or self._new_pool()
        try:
            while pending or inflight:
                # one item queued beyond the workers, so none idles while results are stored
                while pending and len(inflight) < self.workers + 1:
                    if suspects and inflight:
                        break
                    index = pending.popleft()
                    inflight[pool.submit(fn, items[index])] = index
                    start(index)
                    if suspects:
                        break
                done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                alone = len(inflight) == 1
                lost: list[int] = []
                for future in done:
                    index = inflight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        lost.append(index)
                        continue
                    except Exception as exc:
                        result = _failure(exc)
                    suspects.discard(index)
                    yield index, result
                if not lost:
                    continue
                # A worker died and the pool with it: every item under way is lost.
                for future, index in list(inflight.items()):
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        lost.append(index)
                    except Exception as exc:
                        yield index, _failure(exc)
                    else:
                        suspects.discard(index)
                        yield index, result
                inflight.clear()
                _terminate(pool)
                pool = self._new_pool()
                if alone:  # the item that ran alone is the one that killed its worker
                    (index,) = lost
                    deaths[index] += 1
                    if deaths[index] >= self.max_attempts:
                        suspects.discard(index)
                        yield (
                            index,
                            WorkerFailure(
                                f"its worker process died {deaths[index]} times while running it"
                            ),
                        )
                        continue
                suspects.update(lost)
                pending.extendleft(sorted(lost, reverse=True))
        finally:
            if inflight and self._pool is pool:
                _terminate(pool)
                self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        if self._pool is not None:
            _terminate(self._pool)
            self._pool = None


# --------------------------------------------------------------------------- Ray
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SimError(
            "the ray executor needs Ray: pip install 'qvecsim[ray]' (or pip install ray)"
        ) from None
    return ray


_RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_only() -> None:
    """Make a Ray cluster started from this process (and its children) bind to 127.0.0.1.

    Ray replaces a loopback node address by the machine's reachable one unless clusters
    are switched off with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; a local cluster for one
    sweep needs no network, so it is kept on loopback. An explicit setting is respected.
    """
    os.environ.setdefault(_RAY_CLUSTER_ENV, "0")
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and os.environ[_RAY_CLUSTER_ENV] == "0":
        constants.ENABLE_RAY_CLUSTER = False


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``host:port`` address (None for ``auto``, ``ray://...``)."""
    host, sep, port = address.rpartition(":")
    if not sep or "/" in address or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _is_loopback(address: str) -> bool:
    hp = _host_port(address)
    return hp is not None and hp[0] in ("127.0.0.1", "localhost", "::1")


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, with a clear message, when nothing listens at ``host:port`` (Ray
    itself would retry for minutes)."""
    import socket

    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=timeout).close()
    except OSError as exc:
        raise SimError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start one "
            "with 'ray start --head' or leave out --address for a local cluster"
        ) from None


class RayExecutor(Executor):
    """Ray core tasks, one per item, on the cluster at ``address``.

    Without an address a local cluster is started for this process, bound to 127.0.0.1
    (see :func:`loopback_only`), and stopped by :meth:`close`; with one (``auto``,
    ``host:port``, ``ray://...``) the running cluster is joined. If Ray is already
    initialised in this process, that connection is used and left open. A task whose
    worker dies is retried up to ``max_retries`` times by Ray. Every node must have this
    package installed; workers send the run's files back to the driver, so no shared file
    system is needed.
    """

    name = "ray"
    remote = True

    def __init__(
        self, address: str | None = None, workers: int | None = None, max_retries: int = 3
    ) -> None:
        import logging

        local = address in (None, "", "local")
        if not local:
            _check_reachable(str(address))
        if local or _is_loopback(str(address)):
            loopback_only()
        ray = _import_ray()
        self._ray = ray
        self._owned = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
            }
            if local:
                options.update(address="local", _node_ip_address="127.0.0.1")
                if workers:
                    options["num_cpus"] = workers
            else:
                options["address"] = address
            try:
                ray.init(**options)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise SimError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
            self._owned = True
        self.max_retries = max_retries
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._inflight: dict[Any, int] = {}

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any], on_start: OnStart | None = None
    ) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        start = on_start or _noop
        task = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(fn)
        pending: deque[int] = deque(range(len(items)))
        inflight: dict[Any, int] = {}
        self._inflight = inflight
        window = 2 * self.workers
        try:
            while pending or inflight:
                while pending and len(inflight) < window:
                    index = pending.popleft()
                    inflight[task.remote(items[index])] = index
                    start(index)
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    index = inflight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        result = WorkerFailure(
                            f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}",
                            str(exc),
                        )
                    yield index, result
        finally:
            self._cancel()

    def _cancel(self) -> None:
        for ref in list(self._inflight):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # the task may have ended meanwhile
                pass
        self._inflight.clear()

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False

    def abort(self) -> None:
        self._cancel()
        self.close()


def make_executor(
    kind: str = "process", workers: int | None = None, address: str | None = None
) -> Executor:
    """The executor named ``kind`` (one of :data:`EXECUTORS`)."""
    if kind == "inprocess":
        return InProcessExecutor()
    if kind == "process":
        return ProcessExecutor(workers)
    if kind == "ray":
        return RayExecutor(address=address, workers=workers)
    raise SimError(f"unknown executor {kind!r}; known: {', '.join(EXECUTORS)}")

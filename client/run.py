"""How a component's main loop runs: until SIGTERM or SIGINT, under a Lease when asked.

The controller-manager and the scheduler (and, without an elector, the
kubelet and the proxy) all stop the same way: a signal cancels the work,
waits for it to unwind, and gives up the Lease so that a successor need not
wait out its duration. Closing the client stays with the caller, who made it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from .config import ConfigError
from .leaderelection import LeaderElector

log = logging.getLogger("skiff.run")

# The garbage collector's youngest generation is collected after this many more
# container allocations than frees (CPython's default: 700). A component handles a
# watch event or a request with thousands of short-lived dicts and lists; at 700 it
# collected several times within each and promoted them to the older generations,
# whose growth starts full collections over every informer cache. The scheduler
# spent 0.28 s of CPU in 336 collections over a burst of 1,000 pods on 1,000 nodes,
# 0.05 s in 10 at 20,000 (bench/scheduler.py; the apiserver's workers are tuned
# alike, apiserver/workers.py).
GC_YOUNG_THRESHOLD = 20_000


async def run_until_signalled(
    work: Callable[[], Awaitable[None]], *, elector: LeaderElector | None = None
) -> None:
    """Run `work()` (only while holding the elector's Lease, when given) until a signal.

    If `work` ends on its own or fails, this returns or raises at once; the
    Lease is released either way.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stopping.set)

    async def body() -> None:
        await work()

    task = asyncio.create_task(elector.run(work) if elector is not None else body())
    stop = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        stop.cancel()
        task.cancel()  # a no-op when the work already ended
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("the work failed")
            raise
        finally:
            if elector is not None:
                await elector.release()


def component_main(
    prog: str,
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace], Awaitable[None]],
    *,
    exit_codes: dict[type[Exception], int] | None = None,
    fast_loop: bool = False,
) -> int:
    """Every component's `main()`: its log format (`-v`/`--log-level`), then `run(args)`.

    A kubeconfig that cannot be read (and whatever `exit_codes` names) is one
    readable line and an exit code, never a traceback."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is noise
    codes: dict[type[Exception], int] = {ConfigError: 1, **(exit_codes or {})}
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    runner: Callable[[Awaitable[None]], None] = asyncio.run
    if fast_loop:
        # uvloop (the loop uvicorn already runs the apiserver on): less CPU per socket
        # event, for a component whose work is mostly small requests and watch events.
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    try:
        runner(run(args))
    except tuple(codes) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return next(code for kind, code in codes.items() if isinstance(e, kind))
    return 0

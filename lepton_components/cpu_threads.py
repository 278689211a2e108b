"""Caps numpy's BLAS thread pool, torch-free, for a server that serves without torch."""

import threadpoolctl


def cap_blas_threads(num_threads: int) -> None:
    """Without the cap an idle OpenBLAS worker spins on `sched_yield` after each numpy product
    of a message (open-set scores, candidate search), burning system time on a core the
    server's other work could use. 0 or None leaves the pool as it is."""
    if num_threads:
        threadpoolctl.threadpool_limits(limits=num_threads, user_api="blas")

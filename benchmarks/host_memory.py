"""Host memory of this process, for the benchmarks that measure RAM (Linux figures, in MiB)."""

from __future__ import annotations

import resource


def rss_mib() -> float:
    """Resident memory now (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """The most resident memory this process has had so far (ru_maxrss, kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def high_water_mib() -> float:
    """The most resident memory since the process started or since `reset_high_water` (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_high_water() -> bool:
    """Start VmHWM again from the memory resident now (Linux 4.0+, writing 5 to clear_refs), so the peak
    of one part of a run can be told from what came before; False where the system does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True

# On a CPU, keeps freed memory for the next tensor instead of handing it back to the kernel.
# glibc's malloc gives every block over 32 MiB (less, until it has freed a large one) a mapping of
# its own and unmaps it when freed, and it returns free memory at the top of its heap too. An
# evaluation batch of 256 makes and frees activations of up to 118 MB, batch after batch, so each
# came back as fresh pages: a page fault for every 4 KiB, each page filled with zeros by the
# kernel. Kept, they are reused as they are: on 2 CPU cores evaluation at batch 256 ran 1.9x as
# fast; a training step, whose blocks are smaller, about the same (benchmarks/freed_memory.py).
# The numbers computed are the same. Also here: the peak resident memory the scripts report.
import ctypes
import resource
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters, from glibc's malloc.h
# Above the largest activation of the batch sizes used here, and the most free memory kept.
KEEP_BYTES = 1 << 30


def keep_freed_memory(device):
    """Where the model runs on the CPU of a Linux system with glibc, makes malloc keep freed blocks
    of up to KEEP_BYTES for reuse. Returns whether it did; elsewhere it changes nothing."""
    if device.type != 'cpu' or not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL('libc.so.6')  # glibc's name for itself
        libc.gnu_get_libc_version  # and a function only glibc has: musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 where it took the value; both are tried.
    took = [libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES), libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)]
    return all(took)


def peak_resident_mib():
    """This process's peak resident memory so far, in MiB. getrusage counts it in KiB on Linux and
    in bytes on macOS, where the KiB taken for MiB showed 1,024 times the memory used."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == 'darwin' else peak / 2**10

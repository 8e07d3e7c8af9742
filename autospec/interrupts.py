"""SIGTERM handled like Ctrl-C, so that a killed run or sweep records where it stopped."""
import signal
from contextlib import contextmanager


@contextmanager
def sigterm_as_interrupt():
    """Inside the block SIGTERM raises KeyboardInterrupt; the previous handler comes back afterwards.
    Outside the main thread (where Python allows no handlers) signals are left alone."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

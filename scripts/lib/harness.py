"""What scripts/systemd-check, scripts/cluster and scripts/browser-check share: TAP-style log lines, running a command,
waiting for an event. Standard library only."""
import subprocess
import sys
import time


def log(text):
    print(f"# {text}", file=sys.stderr, flush=True)


def run(*args, check=True, timeout=120, **kwargs):
    """A command's result; its standard input is `input` if given, else /dev/null."""
    if "input" not in kwargs:
        kwargs["stdin"] = subprocess.DEVNULL
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def wait_for(what, seconds, condition, interval=0.05):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {seconds} s")
        time.sleep(interval)



"""The nginx processes of examples/openresty/run.sh, read from /proc: shared
by its test (test.py) and bench/openresty_wake.py."""
import os
import signal
import subprocess


def workers_of(master):
    """PIDs of the processes whose parent is master (nginx's workers)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(d))
    return pids


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def stop(proc, seconds=15):
    """SIGTERM to run.sh (nginx quits gracefully), SIGKILL after seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

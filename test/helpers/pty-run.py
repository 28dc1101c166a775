#!/usr/bin/env python3
"""Runs a command in a real pseudo-terminal and types into it, like a user.

    pty-run.py '<json>'   with {"argv": [...], "steps": [{"waitFor": "text", "send": "\\u0003"}], "timeoutMs": n}

Each step waits until the terminal output (since the previous step) contains
`waitFor`, then writes `send` to the terminal: "\\u0003" is Ctrl+C, which the
terminal's line discipline turns into SIGINT for the foreground process
group. A step may instead (or also) resize the terminal, "resize": [rows, columns]
(the kernel sends SIGWINCH to the foreground process group), or send the
command a signal, "kill": "SIGTERM". "size": [rows, columns] is the terminal's
size from the start. Prints one JSON object: the output, and how the command ended
({"exitCode": n} or {"signal": n}), or "timedOut": true if it had to be killed.
"""
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time


def set_size(fd, size):
    rows, columns = size
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def main():
    spec = json.loads(sys.argv[1])
    steps = list(spec.get("steps", []))
    deadline = time.monotonic() + spec.get("timeoutMs", 20000) / 1000.0

    pid, master = pty.fork()
    if pid == 0:
        # The child: a session leader whose controlling terminal is the pty.
        try:
            if "size" in spec:
                set_size(0, spec["size"])
            os.execvp(spec["argv"][0], spec["argv"])
        finally:
            os._exit(127)

    output = b""
    mark = 0
    timed_out = False
    while True:
        if steps and steps[0]["waitFor"].encode() in output[mark:]:
            step = steps.pop(0)
            mark = len(output)
            if "resize" in step:
                set_size(master, step["resize"])
            if "kill" in step:
                os.kill(pid, getattr(signal, step["kill"]))
            if "send" in step:
                os.write(master, step["send"].encode())
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([master], [], [], min(left, 0.1))
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:
            chunk = b""  # EIO: every process holding the terminal has exited
        if not chunk:
            break
        output += chunk

    _, status = os.waitpid(pid, 0)
    os.close(master)
    result = {"output": output.decode("utf-8", "replace"), "timedOut": timed_out, "stepsLeft": len(steps)}
    if os.WIFEXITED(status):
        result["exitCode"] = os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        result["signal"] = os.WTERMSIG(status)
    print(json.dumps(result))


main()

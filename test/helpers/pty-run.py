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

With "jobControl": true the command runs as an interactive shell runs a job:
in its own process group, in the foreground, so that SIGTSTP stops it. When
it stops, the shell takes the terminal back and prints "[stopped: cooked]" or
"[stopped: raw]" (the terminal modes the command left behind); a step with
"fg": true then gives the terminal back to it and continues it. "kill" steps
go to the foreground process group. "shellDelayMs" delays the shell's own
move of the job to the foreground (the job makes it first).
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


def job_control_shell(argv, shell_delay_s=0.0):
    """Runs argv as a foreground job, reports its stops, continues it on SIGUSR1; returns its exit status.

    Whichever of the two runs first puts the job in the foreground. The job
    does it with SIGTTOU still ignored, as a shell's child does: from the
    background, tcsetpgrp would otherwise stop it before it ever ran.
    `shell_delay_s` makes the shell slow to do its part (the tests' check
    of that race)."""
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # tcsetpgrp from the background
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    child = os.fork()
    if child == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
        os.setpgid(0, 0)
        os.tcsetpgrp(0, os.getpgrp())
        signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        os.execvp(argv[0], argv)
    time.sleep(shell_delay_s)
    try:
        os.setpgid(child, child)
        os.tcsetpgrp(0, child)
    except OSError:
        pass  # The child did it first.
    while True:
        _, status = os.waitpid(child, os.WUNTRACED)
        if os.WIFSTOPPED(status):
            os.tcsetpgrp(0, os.getpgrp())
            lflag = termios.tcgetattr(0)[3]
            cooked = (lflag & termios.ICANON) and (lflag & termios.ECHO) and (lflag & termios.ISIG)
            os.write(1, b"[stopped: cooked]" if cooked else b"[stopped: raw]")
            signal.sigwait([signal.SIGUSR1])
            os.tcsetpgrp(0, child)
            os.killpg(child, signal.SIGCONT)
            continue
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


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
            if spec.get("jobControl"):
                os._exit(job_control_shell(spec["argv"], spec.get("shellDelayMs", 0) / 1000.0))
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
                sig = getattr(signal, step["kill"])
                if spec.get("jobControl"):
                    os.killpg(os.tcgetpgrp(master), sig)
                else:
                    os.kill(pid, sig)
            if step.get("fg"):
                os.kill(pid, signal.SIGUSR1)
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

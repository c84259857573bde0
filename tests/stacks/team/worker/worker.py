"""The team stack's worker: every second it takes a job from redis (INCR on a counter,
standing in for a queue) and prints a line about it.

It prints with plain print(): without -u, Python holds its output back in a block
buffer when stdout is a pipe, so the lines would reach the log in bursts of 8 KiB.
The service runs with tty = true, under which stdout is a terminal and print()
flushes every line, as it does in a developer's shell.
"""

import os
import socket
import time


def redis(command):
    """Sends one inline command to redis and returns its one-line answer."""
    with socket.create_connection(("127.0.0.1", int(os.environ["REDIS_PORT"])), timeout=2) as conn:
        conn.sendall(command.encode() + b"\r\n")
        return conn.makefile("rb").readline().decode().strip()


def main():
    interval = float(os.environ.get("WORKER_INTERVAL", "1"))
    print(f"worker: started, a job every {interval:g}s")
    job = 0
    while True:
        job += 1
        total = redis("INCR jobs:done").lstrip(":")
        print(f"worker: job {job} done ({total} done in all)")
        time.sleep(interval)


if __name__ == "__main__":
    main()

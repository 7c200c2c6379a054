#!/usr/bin/env python3
"""Where one node's CPU goes, in five classes, from profiles of benches/profile-node.sh:

    python3 benches/cpu-classes.py PERF_DATA [PERF_DATA ...]

Each cpu-clock sample of the process (DWARF call chains; several files are merged) falls
into one class:
- user: the leaf is in user space (kistrel, libc);
- kernel work: the chain passes through the socket, TCP/IP, skb or loopback code, or the
  copies to and from user memory: the work any backend must have done for the bytes;
- switch: the leaf is the scheduler's (a worker going to sleep or waking up);
- fault: a page fault;
- mechanism: the rest of the kernel: system call entry and exit, poll(2), fd lookups,
  io_uring's submission, completion and task work. This is what a backend's design decides.

Why: the io_uring backend can only beat the poll backend by what poll spends in its
mechanism, so this bounds the io_uring/poll ratio a CPU-bound run can show
(benches/BASELINE.md, session 22). Needs `perf`.
"""

import collections
import subprocess
import sys

# Frames (by name prefix) that mark the kernel's work on the bytes themselves.
WORK = (
    "tcp_", "__tcp", "ip_", "__ip", "net_rx", "__netif", "netif", "skb_", "__skb",
    "_copy_to_iter", "_copy_from_iter", "sock_sendmsg", "sock_recvmsg", "____sys_sendmsg",
    "inet_", "kfree_skb", "sk_", "__sk", "dev_", "__dev", "process_backlog",
    "loopback_xmit", "do_softirq", "__do_softirq", "handle_softirqs", "io_send", "io_recv",
    "io_sendmsg", "io_recvmsg", "__sys_sendto", "__sys_recvfrom", "sock_write_iter",
    "sock_read_iter", "lock_sock", "release_sock",
)
SWITCH = ("finish_task_switch", "__schedule", "schedule", "pick_next_task", "dequeue_task",
          "enqueue_task")
FAULT = ("exc_page_fault", "asm_exc_page_fault")
CLASSES = ("user", "kernel work", "mechanism", "switch", "fault")
USAGE = "usage: python3 benches/cpu-classes.py PERF_DATA [PERF_DATA ...]"


def classify(frames):
    """`frames`: (symbol, in_kernel) from the leaf outward."""
    leaf, leaf_in_kernel = frames[0]
    if not leaf_in_kernel:
        return "user"
    names = [name.split(".")[0] for name, in_kernel in frames if in_kernel]
    if names[0].startswith(SWITCH):
        return "switch"
    if any(n.startswith(WORK) for n in names):
        return "kernel work"
    if any(n.startswith(FAULT) for n in names):
        return "fault"
    return "mechanism"


def samples(path):
    """Yields each sample's frames from `perf script`."""
    out = subprocess.run(
        ["perf", "script", "-i", path, "-F", "ip,sym,dso"],
        check=True, capture_output=True, text=True,
    ).stdout
    frames = []
    for line in out.splitlines() + [""]:
        parts = line.split()
        if not parts:
            if frames:
                yield frames
            frames = []
            continue
        if len(parts) >= 2 and all(c in "0123456789abcdef" for c in parts[0]):
            frames.append((parts[1].split("+")[0], "[kernel.kallsyms]" in line))


def main():
    if len(sys.argv) < 2:
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    counts = collections.Counter()
    for path in sys.argv[1:]:
        for frames in samples(path):
            counts[classify(frames)] += 1
    total = sum(counts.values())
    if total == 0:
        sys.exit("no samples")
    shares = " ".join(f"{c.replace(' ', '_')}={counts[c] / total:.3f}" for c in CLASSES)
    print(f"{shares} samples={total}")


if __name__ == "__main__":
    main()

"""CPython counterparts of multiproc's benchmark cases.

    python3 benches/python/bench.py CASE [--quick|--smoke]

prints one number: the figure for CASE in the unit bench-runner reports (see benches/README.md).
Each case does the same work with the same sizes as the multiproc side, with the standard
library only (multiprocessing, concurrent.futures), and the fork start method wherever the
multiproc side forks. Timed windows hold the work only: processes, pools and managers are
started (and warmed) before the clock starts, except where starting them is the case.
"""

import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

SCALE = "full"


def iters(full, quick):
    """Iteration count by scale (smoke: a five-hundredth of quick, at least 2)."""
    if SCALE == "full":
        return full
    if SCALE == "quick":
        return quick
    return max(quick // 500, 2)


def warm(n):
    return max(n // 10, 1)


FORK = None  # the fork context, set in main()


def noop():
    pass


def noop_arg(x):
    return x


# ---------------------------------------------------------------- spawn


def _start_join(ctx, n):
    for _ in range(warm(n)):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    t = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        assert p.exitcode == 0
    return (time.perf_counter() - t) / n * 1e6


def spawn_fork():
    return _start_join(mp.get_context("fork"), iters(300, 100))


def spawn_spawn():
    return _start_join(mp.get_context("spawn"), iters(15, 5))


def spawn_forkserver():
    return _start_join(mp.get_context("forkserver"), iters(100, 30))


def spawn_forkserver_big_parent():
    big = bytearray(b"\x01") * (256 << 20)  # 256 MiB, every page written
    r = _start_join(mp.get_context("forkserver"), iters(100, 30))
    assert big[-1] == 1
    return r


# ---------------------------------------------------------------- pipe


def _echo(conn):
    while True:
        x = conn.recv()
        if x is None:
            break
        conn.send(x)


def _echo_active(conn):
    while True:
        while not conn.poll(0):
            pass
        x = conn.recv()
        if x is None:
            break
        conn.send(x)


def _rtt(target, n, active):
    a, b = FORK.Pipe()
    p = FORK.Process(target=target, args=(b,))
    p.start()
    b.close()

    def one(i):
        a.send(i)
        if active:
            while not a.poll(0):
                pass
        assert a.recv() == i

    for i in range(warm(n)):
        one(i)
    t = time.perf_counter()
    for i in range(n):
        one(i)
    d = time.perf_counter() - t
    a.send(None)
    p.join()
    return d / n * 1e6


def pipe_rtt_blocking():
    return _rtt(_echo, iters(10_000, 4_000), False)


def pipe_rtt_active():
    return _rtt(_echo_active, iters(20_000, 8_000), True)


MIB = 1 << 20


def _payload(size, k=0):
    base = bytes((i * 7 + 3 + k) & 0xFF for i in range(256))
    return base * (size // 256)


def _sink(conn, payload, counts):
    for count in counts:
        for _ in range(count):
            assert conn.recv_bytes() == payload
        conn.send_bytes(b"ok")


def pipe_throughput_1mib():
    n = iters(400, 150)
    payload = _payload(MIB)
    a, b = FORK.Pipe()
    p = FORK.Process(target=_sink, args=(b, payload, (warm(n), n)))
    p.start()
    for _ in range(warm(n)):
        a.send_bytes(payload)
    assert a.recv_bytes() == b"ok"
    t = time.perf_counter()
    for _ in range(n):
        a.send_bytes(payload)
    assert a.recv_bytes() == b"ok"
    d = time.perf_counter() - t
    p.join()
    return n * MIB / d / 1e6


# ---------------------------------------------------------------- queue


def _producer(q, start, pid, count):
    base = pid << 48
    start.wait()
    for i in range(count):
        q.put(base | i)


def _queue_u64(producers, n):
    q = FORK.Queue()
    start = FORK.Barrier(producers + 1)  # the start line: every producer is up
    per = n // producers
    procs = [FORK.Process(target=_producer, args=(q, start, k, per)) for k in range(producers)]
    for p in procs:
        p.start()
    # warm-up on the parent's own side: the feeder thread and the pipe
    for i in range(1000):
        q.put(i)
    for i in range(1000):
        assert q.get() == i
    start.wait()
    t = time.perf_counter()
    nxt = [0] * producers
    for _ in range(per * producers):
        v = q.get()
        k, i = v >> 48, v & ((1 << 48) - 1)
        assert nxt[k] == i, "per-producer order"
        nxt[k] = i + 1
    d = time.perf_counter() - t
    for p in procs:
        p.join()
    return per * producers / d


def queue_1to1_u64():
    return _queue_u64(1, iters(300_000, 100_000))


def queue_4to1_u64():
    return _queue_u64(4, iters(300_000, 100_000))


def _producer_bytes(q, start, payload, count):
    start.wait()
    for _ in range(count):
        q.put(payload)


def queue_1to1_64kib():
    n = iters(6_000, 2_000)
    size = 64 << 10
    payload = _payload(size)
    q = FORK.Queue()
    start = FORK.Barrier(2)
    p = FORK.Process(target=_producer_bytes, args=(q, start, payload, n))
    p.start()
    q.put(payload)
    assert q.get() == payload
    start.wait()
    t = time.perf_counter()
    for _ in range(n):
        assert q.get() == payload
    d = time.perf_counter() - t
    p.join()
    return n * size / d / 1e6


# ---------------------------------------------------------------- lock


def lock_uncontended():
    n = iters(2_000_000, 600_000)
    lock = FORK.Lock()
    acq, rel = lock.acquire, lock.release
    for _ in range(warm(n)):
        acq()
        rel()
    t = time.perf_counter()
    for _ in range(n):
        acq()
        rel()
    return (time.perf_counter() - t) / n * 1e9


def _contend_body(lock, counter, n):
    acq, rel = lock.acquire, lock.release
    for _ in range(n):
        acq()
        counter.value += 1
        rel()


def _contend(lock, counter, start, done, n):
    start.wait()
    _contend_body(lock, counter, n)
    done.set()


def lock_contended_2proc():
    n = iters(300_000, 100_000)
    lock = FORK.Lock()
    counter = FORK.RawValue("Q", 0)
    start = FORK.Barrier(2)
    done = FORK.Event()
    p = FORK.Process(target=_contend, args=(lock, counter, start, done, n))
    p.start()
    start.wait()
    t = time.perf_counter()
    _contend_body(lock, counter, n)
    done.wait()
    d = time.perf_counter() - t
    p.join()
    assert counter.value == 2 * n, "the lock let two holders in"
    return d / (2 * n) * 1e9


# ---------------------------------------------------------------- manager


def manager_dict_get_rtt():
    n = iters(10_000, 4_000)
    with FORK.Manager() as m:
        d = m.dict({"key": 42})
        for _ in range(warm(n)):
            assert d["key"] == 42
        t = time.perf_counter()
        for _ in range(n):
            assert d["key"] == 42
        return (time.perf_counter() - t) / n * 1e6


def _appender(lst, start, k, count):
    len(lst)  # connect to the manager (a proxy reconnects in a new process) before the clock
    start.wait()
    for i in range(count):
        lst.append((k, i))


def manager_list_append_1client():
    n = iters(12_000, 4_000)
    with FORK.Manager() as m:
        lst = m.list()
        for i in range(warm(n)):
            lst.append((0, i))
        lst[:] = []
        t = time.perf_counter()
        for i in range(n):
            lst.append((0, i))
        d = time.perf_counter() - t
        assert len(lst) == n
        return n / d


def manager_list_append_4clients():
    n = iters(16_000, 6_000)
    per = n // 4
    with FORK.Manager() as m:
        lst = m.list()
        start = FORK.Barrier(5)
        procs = [FORK.Process(target=_appender, args=(lst, start, k, per)) for k in range(4)]
        for p in procs:
            p.start()
        start.wait()
        t = time.perf_counter()
        for p in procs:
            p.join()
        d = time.perf_counter() - t
        assert len(lst) == 4 * per
        return 4 * per / d


# ---------------------------------------------------------------- pool


def pool_map_cs1():
    n = iters(100_000, 20_000)
    with FORK.Pool(2) as pool:
        pool.map(noop_arg, range(1000), chunksize=1)
        t = time.perf_counter()
        r = pool.map(noop_arg, range(n), chunksize=1)
        d = time.perf_counter() - t
    assert r[-1] == n - 1 and len(r) == n
    return d / n * 1e6


def pool_map_default_cs():
    n = iters(1_000_000, 300_000)
    with FORK.Pool(2) as pool:
        pool.map(noop_arg, range(10_000))
        t = time.perf_counter()
        r = pool.map(noop_arg, range(n))
        d = time.perf_counter() - t
    assert r[-1] == n - 1 and len(r) == n
    return d / n * 1e6


def pool_submit():
    n = iters(10_000, 3_000)
    with ProcessPoolExecutor(2, mp_context=FORK) as ex:
        for i in range(warm(n)):
            assert ex.submit(noop_arg, i).result() == i
        t = time.perf_counter()
        for i in range(n):
            assert ex.submit(noop_arg, i).result() == i
        d = time.perf_counter() - t
    return d / n * 1e6


def cpu_piece(k):
    """A CPU-bound piece: an integer LCG loop (the same arithmetic for every piece)."""
    x = k
    for _ in range(PIECE):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return x


PIECE = 0


def pool_cpu_speedup():
    global PIECE
    PIECE = iters(600_000, 250_000)
    pieces = list(range(8))
    with FORK.Pool(2) as pool:
        pool.map(noop_arg, range(100))
        t = time.perf_counter()
        serial = [cpu_piece(k) for k in pieces]
        ts = time.perf_counter() - t
        t = time.perf_counter()
        par = pool.map(cpu_piece, pieces, chunksize=1)
        tp = time.perf_counter() - t
    assert par == serial
    return ts / tp


# ---------------------------------------------------------------- shm


def shm_segment_lifecycle_4kib():
    from multiprocessing import shared_memory

    n = iters(6_000, 2_000)

    def one():
        a = shared_memory.SharedMemory(create=True, size=4096)
        b = shared_memory.SharedMemory(name=a.name)
        b.close()
        a.close()
        a.unlink()

    for _ in range(warm(n)):
        one()
    t = time.perf_counter()
    for _ in range(n):
        one()
    return (time.perf_counter() - t) / n * 1e6


def _write_shm(shm, payload):
    shm.buf[: len(payload)] = payload


def shm_write_64mib():
    from multiprocessing import shared_memory

    size = 64 * MIB
    n = iters(12, 5)
    # Two payloads alternate, so a stale or partial write fails the check.
    payloads = [_payload(size, 0), _payload(size, 1)]
    shm = shared_memory.SharedMemory(create=True, size=size)
    try:
        total = 0.0
        for k in range(n + 1):
            payload = payloads[k % 2]
            t = time.perf_counter()
            p = FORK.Process(target=_write_shm, args=(shm, payload))
            p.start()
            p.join()
            assert p.exitcode == 0
            assert bytes(shm.buf[:size]) == payload
            if k > 0:  # round 0 is the warm-up (first touch of the pages)
                total += time.perf_counter() - t
    finally:
        shm.close()
        shm.unlink()
    return size * n / total / 1e6


# ---------------------------------------------------------------- arena


def _alloc_free(n):
    from multiprocessing.heap import BufferWrapper

    for _ in range(n):
        b = BufferWrapper(64)
        del b


def arena_alloc_free():
    n = iters(100_000, 40_000)
    _alloc_free(warm(n))
    t = time.perf_counter()
    _alloc_free(n)
    return (time.perf_counter() - t) / n * 1e9


def _alloc_free_child(start, done, n):
    start.wait()
    _alloc_free(n)
    done.set()


def arena_alloc_free_2proc():
    # multiprocessing.heap is per process: after fork each side allocates from its own heap.
    n = iters(60_000, 20_000)
    _alloc_free(warm(n))
    start = FORK.Barrier(2)
    done = FORK.Event()
    p = FORK.Process(target=_alloc_free_child, args=(start, done, n))
    p.start()
    start.wait()
    t = time.perf_counter()
    _alloc_free(n)
    done.wait()
    d = time.perf_counter() - t
    p.join()
    return d / (2 * n) * 1e9


CASES = {
    "spawn.fork": spawn_fork,
    "spawn.spawn": spawn_spawn,
    "spawn.forkserver": spawn_forkserver,
    "spawn.forkserver_big_parent": spawn_forkserver_big_parent,
    "pipe.rtt_blocking": pipe_rtt_blocking,
    "pipe.rtt_active": pipe_rtt_active,
    "pipe.throughput_1mib": pipe_throughput_1mib,
    "queue.1to1_u64": queue_1to1_u64,
    "queue.4to1_u64": queue_4to1_u64,
    "queue.1to1_64kib": queue_1to1_64kib,
    "lock.uncontended": lock_uncontended,
    "lock.contended_2proc": lock_contended_2proc,
    "manager.dict_get_rtt": manager_dict_get_rtt,
    "manager.list_append_1client": manager_list_append_1client,
    "manager.list_append_4clients": manager_list_append_4clients,
    "pool.map_cs1": pool_map_cs1,
    "pool.map_default_cs": pool_map_default_cs,
    "pool.submit": pool_submit,
    "pool.cpu_speedup": pool_cpu_speedup,
    "shm.segment_lifecycle_4kib": shm_segment_lifecycle_4kib,
    "shm.write_64mib": shm_write_64mib,
    "arena.alloc_free": arena_alloc_free,
    "arena.alloc_free_2proc": arena_alloc_free_2proc,
}


def main(argv):
    global SCALE, FORK
    names = [a for a in argv if not a.startswith("--")]
    if "--list" in argv:
        print("\n".join(CASES))
        return 0
    if "--smoke" in argv:
        SCALE = "smoke"
    elif "--quick" in argv:
        SCALE = "quick"
    if len(names) != 1 or names[0] not in CASES:
        print(__doc__.strip(), file=sys.stderr)
        print("cases:", ", ".join(CASES), file=sys.stderr)
        return 2
    FORK = mp.get_context("fork")
    v = CASES[names[0]]()
    print(v)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

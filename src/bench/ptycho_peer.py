# Peers of `tiledio bench ptycho` (src/bench/ptycho.rs embeds this file and runs it as
# `python3 -c <this file> MODE ARGS...`); each mode prints one JSON line on stdout.
#
#   check zmq|jax
#       Imports the modules the mode needs and prints their versions (the bench says
#       "missing: <why>" from the error when they do not import).
#   zmq N SIZE REPEATS
#       pyzmq loopback as our stream row does it: a PULL socket (a forked child process that
#       binds tcp://127.0.0.1 on a free port) and a PUSH socket (this process, connecting);
#       per repeat N two-part messages (a small JSON header, then SIZE bytes), sent and
#       received with copy=False. The receiver times the first message to the last: N - 1
#       messages. Prints {"messages": N - 1, "seconds": [one per repeat], ...}.
#   jax NPY DARK_NPY CROP BIN BATCH REPEATS [KERNEL_FRAMES PASSES]
#       What a user writes with JAX for a page-cached .npy stack (as ../shared/peers/
#       ptycho_peers.py): np.load(mmap), batches of BATCH frames through jax.device_put and a
#       jitted dark-subtract (clamped at 0) + crop about the centre + sum-rebin, timed from the
#       first batch to the last result (block_until_ready), after one untimed pass. Checks
#       frame 0 against NumPy. Prints {"frames": N, "seconds": [...], "device": ..., ...}.
#       With KERNEL_FRAMES, also the jitted function alone on the first KERNEL_FRAMES frames
#       resident in GPU memory, PASSES calls per timed run and one wait, as our kernel row:
#       "kernel_frames" (frames per timed run) and "kernel_seconds" [one per repeat].
#
# Every socket has timeouts and the process an alarm: a peer that hangs fails the row.
import json
import signal
import sys
import time

signal.alarm(900)
TIMEOUT_MS = 60000


def check(what):
    if what == "zmq":
        import numpy
        import zmq

        print(json.dumps({"pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "numpy": numpy.__version__}))
    else:
        import jax
        import numpy

        print(json.dumps({"jax": jax.__version__, "device": str(jax.devices()[0]), "numpy": numpy.__version__}))


def zmq_pull(n, size, q):
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.LINGER, 0)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    q.put(port)
    t0 = None
    for i in range(n):
        parts = s.recv_multipart(copy=False)
        if i == 0:
            t0 = time.perf_counter()
        assert len(parts) == 2 and len(parts[1]) == size, (len(parts), len(parts[-1]))
    q.put(time.perf_counter() - t0)
    s.close()
    ctx.term()


def zmq_bench(n, size, repeats):
    import multiprocessing
    import numpy as np
    import zmq

    mp = multiprocessing.get_context("fork")
    payload = np.random.default_rng(1).integers(0, 4096, size // 2, dtype=np.uint16).tobytes()
    payload += bytes(size - len(payload))
    seconds = []
    for _ in range(repeats):
        q = mp.Queue()
        # forked before this process makes its context: the child's libzmq is its own
        child = mp.Process(target=zmq_pull, args=(n, size, q))
        child.start()
        port = q.get(timeout=TIMEOUT_MS / 1000)
        ctx = zmq.Context()
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
        s.setsockopt(zmq.LINGER, TIMEOUT_MS)
        s.connect(f"tcp://127.0.0.1:{port}")
        for i in range(n):
            head = json.dumps({"type": "image", "frame": i, "posx": 0.0, "posy": 0.0}).encode()
            s.send_multipart([head, payload], copy=False)
        seconds.append(q.get(timeout=TIMEOUT_MS / 1000))
        child.join()
        s.close()
        ctx.term()
        if child.exitcode != 0:
            sys.exit(f"the PULL process failed ({child.exitcode})")
    print(json.dumps({"messages": n - 1, "bytes": size, "seconds": seconds, "pyzmq": zmq.__version__,
                      "libzmq": zmq.zmq_version()}))


def preprocess_numpy(frame, dark, cy, cx, crop, b):
    import numpy as np

    f = frame.astype(np.float32) - dark
    np.maximum(f, 0, out=f)
    h = crop // 2
    f = f[cy - h:cy + h, cx - h:cx + h]
    return f.reshape(crop // b, b, crop // b, b).sum(axis=(1, 3))


def jax_bench(npy, dark_npy, crop, b, batch, repeats, kernel_frames=0, passes=0):
    import jax
    import jax.numpy as jnp
    import numpy as np

    mm = np.load(npy, mmap_mode="r")
    dark = np.load(dark_npy)
    n, hh, ww = mm.shape
    cy, cx = hh // 2, ww // 2
    half = crop // 2

    @jax.jit
    def pre(stack, dark):
        f = jnp.maximum(stack.astype(jnp.float32) - dark, 0)
        f = f[:, cy - half:cy + half, cx - half:cx + half]
        return f.reshape(f.shape[0], crop // b, b, crop // b, b).sum(axis=(2, 4))

    ddark = jax.device_put(dark)

    def run():
        out = None
        for i in range(0, n, batch):
            out = pre(jax.device_put(np.ascontiguousarray(mm[i:i + batch])), ddark)
        out.block_until_ready()
        return out

    first = pre(jax.device_put(np.ascontiguousarray(mm[:batch])), ddark)
    first.block_until_ready()
    run()  # compiles the last (shorter) batch too
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t)
    ref = preprocess_numpy(np.asarray(mm[0]), dark, cy, cx, crop, b)
    err = float(np.abs(np.asarray(first[0]) - ref).max())
    result = {"frames": n, "seconds": seconds, "device": str(jax.devices()[0]), "jax": jax.__version__,
              "max_abs_err_frame0": err}
    k = min(kernel_frames, n)
    if k > 0 and passes > 0:
        resident = jax.device_put(np.ascontiguousarray(mm[:k]))
        out = pre(resident, ddark)
        out.block_until_ready()
        kerr = float(np.abs(np.asarray(out[0]) - ref).max())
        ks = []
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(passes):
                out = pre(resident, ddark)
            out.block_until_ready()
            ks.append(time.perf_counter() - t)
        result.update({"kernel_frames": k * passes, "kernel_seconds": ks, "kernel_max_abs_err_frame0": kerr})
    print(json.dumps(result))


mode = sys.argv[1]
a = sys.argv[2:]
if mode == "check":
    check(a[0])
elif mode == "zmq":
    zmq_bench(int(a[0]), int(a[1]), int(a[2]))
elif mode == "jax":
    jax_bench(a[0], a[1], *(int(x) for x in a[2:]))
else:
    sys.exit(f"unknown mode {mode}")

# pyzmq / cbor2 peers for crates/tiledio-ptycho/tests/stream.rs (run through
# tiledio-test-support's python runner: `python3 -c <this file> MODE ARGS...`).
#
#   push ENDPOINT bind|connect FORMAT N H W DTYPE OUT.npz
#       FORMAT: tiledio | v2 | v2-lz4 | v2-bslz4. Sends a series of random frames and saves
#       them (and the positions) to OUT.npz for the Rust side to compare.
#   pull ENDPOINT bind|connect OUT.npz
#       Receives one series (tiledio or Stream V2, decoded with cbor2, compressed payloads
#       decoded here in NumPy) and saves frames and positions.
#   ptypy META DATA OUT.npz
#       Drives the DiamondZMQLoader protocol: REQ "Start" -> pickle, PULL N frames, "Stop".
#   bench ENDPOINT N SIZE
#       pyzmq PUSH -> pyzmq PULL (a child process) of N messages of SIZE bytes; prints MB/s.
#
# Every socket has timeouts and the process an alarm: a peer that never comes fails the test.
import json
import pickle
import signal
import struct
import sys

import numpy as np
import zmq
import cbor2
import numcodecs

signal.alarm(120)
TIMEOUT_MS = 30000


def sock(ctx, kind, endpoint, mode):
    s = ctx.socket(kind)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.LINGER, TIMEOUT_MS)
    if mode == "bind":
        s.bind(endpoint)
    else:
        s.connect(endpoint)
    return s


def bitshuffle(block, es):
    a = np.frombuffer(block, np.uint8).reshape(-1, es)
    bits = np.unpackbits(a, axis=1, bitorder="little")
    return np.packbits(bits.T, axis=1, bitorder="little").tobytes()


def bitunshuffle(sh, n, es):
    bits = np.unpackbits(np.frombuffer(sh, np.uint8).reshape(es * 8, n // 8), axis=1, bitorder="little")
    return np.packbits(bits.T.reshape(n, es * 8), axis=1, bitorder="little").tobytes()


def lz4_block(b):
    return numcodecs.LZ4().encode(b)[4:]


def lz4_unblock(b, size):
    return numcodecs.LZ4().decode(struct.pack("<I", size) + b)


def bslz4_h5(data, es):
    n = len(data) // es
    block = max(128, (8192 // es) & ~7)
    out = struct.pack(">QI", len(data), block * es)
    done = 0
    while n - done >= 8:
        m = block if n - done >= block else (n - done) & ~7
        c = lz4_block(bitshuffle(data[done * es:(done + m) * es], es))
        out += struct.pack(">I", len(c)) + c
        done += m
    return out + data[done * es:]


def unbslz4_h5(c, es):
    total, block_bytes = struct.unpack(">QI", c[:12])
    n, block = total // es, block_bytes // es
    out, pos, done = b"", 12, 0
    while n - done >= 8:
        m = block if n - done >= block else (n - done) & ~7
        (clen,) = struct.unpack(">I", c[pos:pos + 4])
        out += bitunshuffle(lz4_unblock(c[pos + 4:pos + 4 + clen], m * es), m, es)
        pos += 4 + clen
        done += m
    out += c[pos:pos + (n - done) * es]
    assert pos + (n - done) * es == len(c) and len(out) == total
    return out


def lz4_h5(data):
    block = 1 << 16
    out = struct.pack(">QI", len(data), block)
    for i in range(0, len(data), block):
        b = data[i:i + block]
        c = lz4_block(b)
        if len(c) >= len(b):
            c = b
        out += struct.pack(">I", len(c)) + c
    return out


def unlz4_h5(c):
    total, block = struct.unpack(">QI", c[:12])
    out, pos = b"", 12
    while len(out) < total:
        m = min(block, total - len(out))
        (clen,) = struct.unpack(">I", c[pos:pos + 4])
        b = c[pos + 4:pos + 4 + clen]
        out += b if clen == m else lz4_unblock(b, m)
        pos += 4 + clen
    assert pos == len(c)
    return out


TYPED = {"uint8": 64, "uint16": 69, "uint32": 70, "float32": 85}
UNTYPED = {64: "u1", 69: "<u2", 70: "<u4", 71: "<u8", 85: "<f4", 86: "<f8"}


def frames_for(n, h, w, dtype, seed=7):
    rng = np.random.default_rng(seed)
    hi = 1000 if np.dtype(dtype).itemsize > 1 else 200
    f = rng.integers(0, hi, size=(n, h, w)).astype(dtype)
    f[:, : h // 3] = 0  # compressible
    return f


def push(endpoint, mode, fmt, n, h, w, dtype, out):
    frames = frames_for(n, h, w, dtype)
    pos = np.stack([np.arange(n) * 0.5, -np.arange(n) * 0.25], axis=1)
    np.savez(out, frames=frames, pos=pos)
    ctx = zmq.Context()
    s = sock(ctx, zmq.PUSH, endpoint, mode)
    if fmt == "tiledio":
        s.send(json.dumps({"type": "start", "frames": n, "shape": [h, w], "dtype": dtype}).encode())
        for i in range(n):
            hdr = {"type": "image", "frame": i, "posx": pos[i, 0], "posy": pos[i, 1]}
            s.send_multipart([json.dumps(hdr).encode(), frames[i].tobytes()])
        s.send(b'{"type": "end"}')
    else:
        start = {
            "type": "start", "series_id": 3, "series_unique_id": "py", "number_of_images": n,
            "image_size_x": w, "image_size_y": h, "channels": ["threshold_1", "threshold_2"],
            "count_time": 0.001, "arm_date": cbor2.CBORTag(0, "2024-01-01T00:00:00Z"),
            "goniometer": {"omega": {"start": 0.0, "increment": 0.1}},
        }
        s.send(cbor2.dumps(cbor2.CBORTag(55799, start)))
        es = np.dtype(dtype).itemsize
        for i in range(n):
            raw = frames[i].tobytes()
            if fmt == "v2-bslz4":
                payload = cbor2.CBORTag(56500, ["bslz4", es, bslz4_h5(raw, es)])
            elif fmt == "v2-lz4":
                payload = cbor2.CBORTag(56500, ["lz4", 0, lz4_h5(raw)])
            else:
                payload = raw
            arr = cbor2.CBORTag(40, [[h, w], cbor2.CBORTag(TYPED[dtype], payload)])
            other = cbor2.CBORTag(40, [[h, w], cbor2.CBORTag(TYPED[dtype], bytes(len(raw)))])
            img = {
                "type": "image", "series_id": 3, "series_unique_id": "py", "image_id": i,
                "real_time": [1, 1000], "start_time": [i, 1000], "stop_time": [i + 1, 1000],
                "user_data": {"posx": float(pos[i, 0]), "posy": float(pos[i, 1])},
                "data": {"threshold_2": other, "threshold_1": arr},
            }
            s.send(cbor2.dumps(img))
        s.send(cbor2.dumps({"type": "end", "series_id": 3, "series_unique_id": "py"}))
    s.close()
    ctx.term()


def decode_v2(msg):
    m = cbor2.loads(msg)
    if isinstance(m, cbor2.CBORTag) and m.tag == 55799:
        m = m.value
    if m["type"] != "image":
        return m, None
    (dims, typed) = m["data"]["threshold_1"].value
    content = typed.value
    dt = UNTYPED[typed.tag]
    if isinstance(content, cbor2.CBORTag):
        assert content.tag == 56500
        alg, es, c = content.value
        content = unbslz4_h5(c, es) if alg == "bslz4" else unlz4_h5(c)
    a = np.frombuffer(content, dt).reshape(dims)
    return m, a


def pull(endpoint, mode, out):
    ctx = zmq.Context()
    s = sock(ctx, zmq.PULL, endpoint, mode)
    frames, pos, n = [], [], None
    while True:
        parts = s.recv_multipart()
        if parts[0][:1] == b"{":
            h = json.loads(parts[0])
            if h["type"] == "start":
                n, dtype = h["frames"], h["dtype"]
                shape = h["shape"]
            elif h["type"] == "image":
                assert h["frame"] == len(frames), (h["frame"], len(frames))
                frames.append(np.frombuffer(parts[1], dtype).reshape(shape))
                pos.append([h["posx"], h["posy"]])
            else:
                break
        else:
            assert len(parts) == 1
            m, a = decode_v2(parts[0])
            if m["type"] == "start":
                n = m["number_of_images"]
            elif m["type"] == "image":
                assert m["image_id"] == len(frames)
                frames.append(a)
                pos.append([m["user_data"]["posx"], m["user_data"]["posy"]])
            else:
                break
    assert n == len(frames), (n, len(frames))
    np.savez(out, frames=np.stack(frames), pos=np.array(pos))
    s.close()
    ctx.term()


def ptypy(meta_ep, data_ep, out):
    # as ptypy/experiment/diamond_streaming.py: REQ + PULL connect, "Start", pickle, frames
    ctx = zmq.Context()
    meta = sock(ctx, zmq.REQ, meta_ep, "connect")
    data = sock(ctx, zmq.PULL, data_ep, "connect")
    meta.send(b"Start")
    md = pickle.loads(meta.recv())
    assert set(md) == {"dtype", "shape"} and isinstance(md["shape"], tuple), md
    shape = md["shape"]
    buf = np.empty(shape=shape, dtype=md["dtype"])
    pos = np.empty(shape=(shape[0], 2), dtype=float)
    for i in range(shape[0]):
        databuf, posxbuf, posybuf = data.recv_multipart()
        buf[i] = np.frombuffer(databuf, dtype=md["dtype"]).reshape(shape[1:])
        pos[i] = np.array([float(posybuf.decode()), float(posxbuf.decode())])
    meta.send(b"Stop")
    assert meta.recv() == b"OK"
    np.savez(out, frames=buf, pos=pos)
    print(json.dumps({"dtype": md["dtype"], "shape": list(shape)}))
    meta.close()
    data.close()
    ctx.term()


def bench_pull(endpoint, n, size, q):
    ctx = zmq.Context()
    s = sock(ctx, zmq.PULL, endpoint, "connect")
    import time
    for i in range(n):
        m = s.recv(copy=False)
        if i == 0:
            t0 = time.perf_counter()
        assert len(m) == size
    q.put(time.perf_counter() - t0)


def bench(endpoint, n, size):
    import multiprocessing as mp
    mp = mp.get_context("fork")
    q = mp.Queue()
    p = mp.Process(target=bench_pull, args=(endpoint, n, size, q))
    p.start()
    ctx = zmq.Context()
    s = sock(ctx, zmq.PUSH, endpoint, "bind")
    msg = np.random.default_rng(1).integers(0, 255, size, dtype=np.uint8).tobytes()
    for _ in range(n):
        s.send(msg, copy=False)
    dt = q.get()
    p.join()
    print(json.dumps({"messages": n - 1, "seconds": dt, "msg_per_s": (n - 1) / dt, "MB_per_s": (n - 1) * size / dt / 1e6}))


mode = sys.argv[1]
a = sys.argv[2:]
if mode == "push":
    push(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]), a[6], a[7])
elif mode == "pull":
    pull(a[0], a[1], a[2])
elif mode == "ptypy":
    ptypy(a[0], a[1], a[2])
elif mode == "bench":
    bench(a[0], int(a[1]), int(a[2]))
else:
    sys.exit(f"unknown mode {mode}")

"""File-system floor for many small files: 2304 x 768 KiB from host memory, page cache, no fsync."""
import os, time, shutil, threading, sys
N, SZ = 2304, 786432
data = os.urandom(SZ)
def run(name, nthreads, dirs, rename, tmpfile=False):
    root = f"/tmp/fsf/{name}"; shutil.rmtree(root, ignore_errors=True)
    for d in range(dirs): os.makedirs(f"{root}/{d}", exist_ok=True)
    jobs = [(i % dirs, i) for i in range(N)]  # interleaved over directories
    nxt = [0]; lock = threading.Lock()
    def w():
        while True:
            with lock:
                k = nxt[0]; nxt[0] += 1
            if k >= N: return
            d, i = jobs[k]; final = f"{root}/{d}/{i}"
            if tmpfile:
                fd = os.open(f"{root}/{d}", os.O_TMPFILE | os.O_WRONLY, 0o644)
                os.pwrite(fd, data, 0)
                os.link(f"/proc/self/fd/{fd}", final); os.close(fd)
            elif rename:
                tmp = f"{root}/{d}/.{i}.tmp"
                fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644); os.pwrite(fd, data, 0); os.close(fd)
                os.rename(tmp, final)
            else:
                fd = os.open(final, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644); os.pwrite(fd, data, 0); os.close(fd)
    t = time.perf_counter()
    th = [threading.Thread(target=w) for _ in range(nthreads)]; [x.start() for x in th]; [x.join() for x in th]
    dt = time.perf_counter() - t
    print(f"{name:28s} threads={nthreads:3d} dirs={dirs:3d} {dt*1e3:7.1f} ms {N*SZ/dt/1e9:6.2f} GB/s {dt/N*1e6:6.1f} us/file", flush=True)
    shutil.rmtree(root, ignore_errors=True)
for th in (1, 4, 16):
    run("direct-names-1dir", th, 1, False)
    run("direct-names-48dirs", th, 48, False)
    run("temp+rename-48dirs", th, 48, True)
    run("o_tmpfile+link-48dirs", th, 48, False, tmpfile=True)
run("temp+rename-48dirs", 32, 48, True)

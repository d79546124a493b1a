import mmap, os, threading, time, sys
d = sys.argv[1]
open('/proc/self/comm', 'w').write('py (x)) y')
ev = threading.Event()
tids = []
def work(i):
    tids.append(threading.get_native_id())
    ev.wait()
ts = [threading.Thread(target=work, args=(i,)) for i in range(3)]
for t in ts: t.start()
while len(tids) < 3: time.sleep(0.01)
open('/proc/self/task/%d/comm' % tids[0], 'w').write('thr) 0')
p = os.path.join(d, 'py deleted.bin')
with open(p, 'wb') as f: f.write(b'\0' * 16384)
f = open(p, 'r+b')
m = mmap.mmap(f.fileno(), 16384)
m[0] = 1
os.unlink(p)
print(os.getpid(), *tids, flush=True)
time.sleep(1000)

"""Per-PUT stages from `strace -f -ttt -T -s 32` of the daemon during sequential PUTs.

request in (worker recvfrom 'PUT') -> temp file created (file tier) -> directory fsync
done (file tier) -> answer written (worker sendto/writev 'HTTP/1.1 200')."""
import re, sys, statistics as st
line_re = re.compile(r'^(?:\[pid\s+)?(\d+)?\]?\s*(\d+\.\d+)\s+(.*)$')
dur_re = re.compile(r'<(\d+\.\d+)>\s*$')
events = []
pending = {}
for raw in open(sys.argv[1], errors='replace'):
    m = line_re.match(raw.rstrip('\n'))
    if not m:
        continue
    pid, ts, rest = m.group(1) or '0', float(m.group(2)), m.group(3)
    d = dur_re.search(rest)
    dur = float(d.group(1)) if d else 0.0
    if rest.endswith('<unfinished ...>'):
        pending[pid] = (ts, rest)
        continue
    if rest.startswith('<...'):
        start, first = pending.pop(pid, (ts - dur, rest))
        rest = first + rest
        ts = start
    call = rest.split('(', 1)[0]
    events.append((ts, ts + dur, pid, call, rest))
events.sort()
puts = []
cur = None
for start, end, pid, call, rest in events:
    if call in ('recvfrom', 'read') and '"PUT ' in rest:
        cur = {'recv': end}
    elif cur is None:
        continue
    elif call == 'openat' and '.json.tmp' in rest and 'open' not in cur:
        cur['open'] = start
        cur['fpid'] = pid
    elif call == 'rename' and 'open' in cur:
        cur['rename'] = end
    elif call == 'fsync' and 'rename' in cur and 'syncdir' not in cur:
        cur['syncdir'] = end
    elif call in ('sendto', 'writev', 'write') and 'HTTP/1.1 200' in rest and 'syncdir' in cur:
        cur['send'] = start
        puts.append(cur)
        cur = None
def ms(xs):
    return f"median {st.median(xs)*1e3:.3f} ms, mean {st.mean(xs)*1e3:.3f} ms"
print(f"{len(puts)} PUTs")
if puts:
    total = [p['send'] - p['recv'] for p in puts]
    a = [p['open'] - p['recv'] for p in puts]
    b = [p['syncdir'] - p['open'] for p in puts]
    c = [p['send'] - p['syncdir'] for p in puts]
    gaps = [puts[i+1]['recv'] - puts[i]['send'] for i in range(len(puts)-1)]
    print("request read -> temp file created (admit, hop to the file tier):", ms(a))
    print("temp file created -> directory fsync done (the durable write):  ", ms(b))
    print("directory fsync done -> answer written (memory, queue, answer):", ms(c))
    print("request read -> answer written, in the daemon:                 ", ms(total))
    print("answer written -> next request read (client and loopback):     ", ms(gaps))

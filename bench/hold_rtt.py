# Three UDP round trips over loopback (sendto to recv), 0.2 s apart, in ms.
import socket
import time

recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
recv.bind(("127.0.0.1", 5360))
send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
times = []
for _ in range(3):
    start = time.perf_counter()
    send.sendto(b"x", ("127.0.0.1", 5360))
    recv.recv(16)
    times.append((time.perf_counter() - start) * 1000)
    time.sleep(0.2)
print(" ".join("%.3f" % t for t in times))

# TCP_NODELAY on the listening sockets of the storage daemons whose pids are given (connections accepted later inherit
# it), as the host runtime sets it (DaemonSockets): their sockets are taken with pidfd_getfd.
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
for pid in map(int, sys.argv[1:]):
    pidfd = libc.syscall(434, pid, 0)
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
            s = socket.socket(fileno=libc.syscall(438, pidfd, int(fd), 0))
            if s.family == socket.AF_INET: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.close()
    os.close(pidfd)

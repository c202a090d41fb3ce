"""Which process of a multi-worker server holds a TCP connection (Linux ``/proc``): the workers share
one listening socket, so only the kernel knows which of them accepted a given client."""

from pathlib import Path


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def command_line(pid: int) -> bytes:
    """``pid``'s command line (NUL-separated), or empty when the process is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _inode_of_server_side(server_port: int, client_port: int) -> str | None:
    """The socket inode of the server's end of the connection from ``client_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return inode
    return None


def holder(pids: list[int], server_port: int, client_port: int) -> int | None:
    """Which of ``pids`` holds the server side of the connection from ``client_port``."""
    inode = _inode_of_server_side(server_port, client_port)
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if descriptor.readlink().as_posix() == wanted:
                    return pid
            except OSError:
                continue
    return None

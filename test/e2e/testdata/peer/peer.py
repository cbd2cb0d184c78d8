# An asyncio HTTP server (epoll, non-blocking accept) that prints each
# connection's peer and local address as Python sees them; it closes its
# listener at the first line on stdin and exits at the second.
import asyncio
import sys


async def handle(reader, writer):
    peer = writer.get_extra_info("peername")
    local = writer.get_extra_info("sockname")
    print(f"peer from={peer[0]}:{peer[1]} local={local[0]}:{local[1]}", flush=True)
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    body = b"local python\n"
    writer.write(b"HTTP/1.1 200 OK\r\nX-Served-By: local-probe\r\nConnection: close\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", int(sys.argv[1]))
    print("serving", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    server.close()
    await server.wait_closed()
    print("closed listener", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)


asyncio.run(main())

/*
 * connect: how a C program connects, for the tests of outgoing connections
 * handed over connected in the target (test/e2e/direct_test.go). Built
 * with `musl-gcc -static`. Each mode connects to IP:PORT, writes "hello
 * from C", shuts its side down, reads until the server closes, and prints
 * "reply ..." and, before that, the socket's addresses ("local=IP:PORT
 * peer=IP:PORT").
 *
 *   connect block IP PORT     blocking socket; options set before connect
 *                             (TCP_NODELAY, SO_KEEPALIVE, SO_RCVBUF,
 *                             SO_LINGER, IP_TOS) are printed after it
 *   connect nonblock IP PORT  SOCK_NONBLOCK|SOCK_CLOEXEC; connect's result,
 *                             poll, SO_ERROR, connect again (0, then
 *                             EISCONN); the descriptor's flags
 *   connect epoll IP PORT     non-blocking, registered in an epoll instance
 *                             before connect; waits with epoll_wait
 *   connect bind IP PORT      bound to 0.0.0.0:0 before connect
 *   connect again IP PORT     non-blocking connect to an address that does
 *                             not answer, then connect again at once: prints
 *                             its errno (EALREADY while the first connects)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what) {
	printf("%s: errno %d (%s)\n", what, errno, strerror(errno));
	return 1;
}

static struct sockaddr_in addr_of(const char *ip, const char *port) {
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(atoi(port));
	inet_pton(AF_INET, ip, &sa.sin_addr);
	return sa;
}

static void print_addrs(int fd) {
	struct sockaddr_in l, p;
	socklen_t ll = sizeof l, pl = sizeof p;
	char lip[INET_ADDRSTRLEN] = "?", pip[INET_ADDRSTRLEN] = "?";
	if (getsockname(fd, (struct sockaddr *)&l, &ll) == 0)
		inet_ntop(AF_INET, &l.sin_addr, lip, sizeof lip);
	if (getpeername(fd, (struct sockaddr *)&p, &pl) == 0)
		inet_ntop(AF_INET, &p.sin_addr, pip, sizeof pip);
	printf("local=%s:%d peer=%s:%d\n", lip, ntohs(l.sin_port), pip, ntohs(p.sin_port));
}

static void print_flags(int fd) {
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	printf("flags nonblock=%d cloexec=%d\n", !!(fl & O_NONBLOCK), !!(fdfl & FD_CLOEXEC));
}

/* wait waits for events on fd: with poll, or epoll_wait on ep if ep >= 0. */
static int wait_for(int fd, int ep, short events) {
	if (ep >= 0) {
		struct epoll_event ev;
		for (;;) {
			int n = epoll_wait(ep, &ev, 1, 10000);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			if (ev.events & (events | EPOLLERR | EPOLLHUP))
				return 0;
		}
	}
	struct pollfd p = {.fd = fd, .events = events};
	return poll(&p, 1, 10000) == 1 ? 0 : -1;
}

/* exchange prints the connected socket's addresses (not after the
 * exchange: once both sides have closed, getpeername fails with ENOTCONN),
 * writes, half-closes, reads until EOF and prints the reply. */
static int exchange(int fd, int ep) {
	print_addrs(fd);
	const char *msg = "hello from C";
	size_t off = 0;
	while (off < strlen(msg)) {
		ssize_t n = write(fd, msg + off, strlen(msg) - off);
		if (n < 0 && errno == EAGAIN && wait_for(fd, ep, POLLOUT) == 0)
			continue;
		if (n < 0)
			return fail("write");
		off += n;
	}
	if (shutdown(fd, SHUT_WR) != 0)
		return fail("shutdown");
	char buf[512];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
		if (n < 0 && errno == EAGAIN) {
			if (wait_for(fd, ep, POLLIN) != 0)
				return fail("wait for the reply");
			continue;
		}
		if (n < 0)
			return fail("read");
		if (n == 0)
			break;
		got += n;
	}
	buf[got] = 0;
	printf("reply %s\n", buf);
	return 0;
}

static int blocking(const char *ip, const char *port) {
	struct sockaddr_in to = addr_of(ip, port);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, rcvbuf = 32768, tos = IPTOS_LOWDELAY;
	struct linger lg = {.l_onoff = 1, .l_linger = 5};
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) || setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) || setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) ||
	    setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos))
		return fail("setsockopt");
	if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0)
		return fail("connect");
	int nodelay = 0, keepalive = 0, rb = 0, t = 0;
	socklen_t l = sizeof(int), ll = sizeof lg;
	memset(&lg, 0, sizeof lg);
	getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &l);
	getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive, &l);
	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, &l);
	getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &ll);
	getsockopt(fd, IPPROTO_IP, IP_TOS, &t, &l);
	printf("options nodelay=%d keepalive=%d rcvbuf=%d linger=%d/%d tos=%d\n", nodelay, keepalive, rb, lg.l_onoff, lg.l_linger, t);
	print_flags(fd);
	return exchange(fd, -1);
}

/* nonblocking connects a non-blocking socket; with ep it is registered in
 * that epoll instance first. */
static int nonblocking(const char *ip, const char *port, int use_epoll) {
	struct sockaddr_in to = addr_of(ip, port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), ep = -1;
	if (use_epoll) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};
		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
			return fail("epoll");
	}
	int rc = connect(fd, (struct sockaddr *)&to, sizeof to);
	if (rc != 0 && errno != EINPROGRESS)
		return fail("connect");
	printf("connect=%s\n", rc == 0 ? "0" : "EINPROGRESS");
	if (rc != 0) {
		if (wait_for(fd, ep, POLLOUT) != 0)
			return fail("wait for connect");
		int err = 0;
		socklen_t l = sizeof err;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err != 0) {
			errno = err;
			return fail("SO_ERROR");
		}
	}
	/* Some programs call connect again to learn that it completed: the
	 * kernel says 0 the first time after completion, EISCONN after that. */
	if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0)
		return fail("connect again");
	if (connect(fd, (struct sockaddr *)&to, sizeof to) == 0 || errno != EISCONN)
		return fail("connect a third time");
	printf("connect again=0 then EISCONN\n");
	print_flags(fd);
	if (use_epoll) { /* now wait for input only: a level-triggered EPOLLOUT would spin */
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
	}
	return exchange(fd, ep);
}

static int bound(const char *ip, const char *port) {
	struct sockaddr_in to = addr_of(ip, port), any = addr_of("0.0.0.0", "0");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(fd, (struct sockaddr *)&any, sizeof any) != 0)
		return fail("bind");
	if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0)
		return fail("connect");
	return exchange(fd, -1);
}

static int again(const char *ip, const char *port) {
	struct sockaddr_in to = addr_of(ip, port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (connect(fd, (struct sockaddr *)&to, sizeof to) == 0 || errno != EINPROGRESS)
		return fail("connect");
	int rc = connect(fd, (struct sockaddr *)&to, sizeof to);
	printf("connect again=%s\n", rc == 0 ? "0" : errno == EALREADY ? "EALREADY" : strerror(errno));
	return 0;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 4) {
		fprintf(stderr, "usage: see the comment at the top of connect.c\n");
		return 2;
	}
	if (!strcmp(argv[1], "block"))
		return blocking(argv[2], argv[3]);
	if (!strcmp(argv[1], "nonblock"))
		return nonblocking(argv[2], argv[3], 0);
	if (!strcmp(argv[1], "epoll"))
		return nonblocking(argv[2], argv[3], 1);
	if (!strcmp(argv[1], "bind"))
		return bound(argv[2], argv[3]);
	if (!strcmp(argv[1], "again"))
		return again(argv[2], argv[3]);
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 2;
}

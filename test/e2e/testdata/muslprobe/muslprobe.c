/*
 * muslprobe: what a program built with musl does on the network, for the
 * UDP interposition tests. It is built with `musl-gcc -static`, so its
 * resolver is musl's: DNS queries go out with sendto on an unconnected UDP
 * socket, and replies are accepted only from the address they were sent to.
 *
 *   muslprobe resolve NAME PORT   getaddrinfo(NAME), connect to PORT, send
 *                                 "PING\r\n" and print the first reply line
 *   muslprobe udp IP PORT         sendto IP:PORT on an unconnected socket,
 *                                 print the reply and the address recvfrom
 *                                 reports, then the same with sendmsg and
 *                                 recvmsg, then two datagrams in one sendmmsg
 *   muslprobe udpwait IP PORT     sendto IP:PORT, which never answers, then
 *                                 wait in recvfrom until SIGALRM (no
 *                                 SA_RESTART) interrupts it after a second
 *   muslprobe tfo IP PORT         sendto with MSG_FASTOPEN, print the reply
 *   muslprobe tfoconnect IP PORT  TCP_FASTOPEN_CONNECT, connect, write, read
 *   muslprobe bindconnect IP PORT bind to 0.0.0.0:0 with SO_REUSEPORT, then
 *                                 connect, write, read
 *   muslprobe devconnect DEV IP PORT  SO_BINDTODEVICE DEV, then connect
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif

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

/* ping writes PING on a connected stream socket and prints the first reply. */
static int ping(int fd, const char *what, int written) {
	char buf[256];
	if (!written && write(fd, "PING\r\n", 6) != 6)
		return fail("write");
	ssize_t n = read(fd, buf, sizeof buf - 1);
	if (n <= 0)
		return fail("read");
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	printf("%s reply %s\n", what, buf);
	return 0;
}

static int resolve(const char *name, const char *port) {
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
	int rc = getaddrinfo(name, port, &hints, &res);
	if (rc != 0) {
		printf("getaddrinfo %s: %s (%d)\n", name, gai_strerror(rc), rc);
		return 1;
	}
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
	printf("resolved %s %s\n", name, ip);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, res->ai_addr, res->ai_addrlen) != 0)
		return fail("connect");
	freeaddrinfo(res);
	return ping(fd, "resolve", 0);
}

static void print_from(const char *how, const char *data, ssize_t n, struct sockaddr_in *from) {
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &from->sin_addr, ip, sizeof ip);
	printf("%s from %s:%d: %.*s\n", how, ip, ntohs(from->sin_port), (int)n, data);
}

static int udp(const char *ipstr, const char *port) {
	struct sockaddr_in to = addr_of(ipstr, port), from;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	char buf[512];
	if (sendto(fd, "one", 3, 0, (struct sockaddr *)&to, sizeof to) != 3)
		return fail("sendto");
	socklen_t fl = sizeof from;
	ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
	if (n < 0)
		return fail("recvfrom");
	print_from("recvfrom", buf, n, &from);

	struct iovec iov = {.iov_base = "two", .iov_len = 3};
	struct msghdr mh = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov, .msg_iovlen = 1};
	if (sendmsg(fd, &mh, 0) != 3)
		return fail("sendmsg");
	char b1[4], b2[508];
	struct iovec riov[2] = {{.iov_base = b1, .iov_len = sizeof b1}, {.iov_base = b2, .iov_len = sizeof b2}};
	struct msghdr rh = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = riov, .msg_iovlen = 2};
	memset(&from, 0, sizeof from);
	n = recvmsg(fd, &rh, 0);
	if (n < 0)
		return fail("recvmsg");
	memcpy(buf, b1, n < 4 ? n : 4);
	if (n > 4)
		memcpy(buf + 4, b2, n - 4);
	print_from("recvmsg", buf, n, &from);

	struct iovec i3 = {.iov_base = "three", .iov_len = 5}, i4 = {.iov_base = "four", .iov_len = 4};
	struct mmsghdr mm[2] = {
		{.msg_hdr = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &i3, .msg_iovlen = 1}},
		{.msg_hdr = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &i4, .msg_iovlen = 1}},
	};
	if (sendmmsg(fd, mm, 2, 0) != 2 || mm[0].msg_len != 5 || mm[1].msg_len != 4)
		return fail("sendmmsg");
	for (int i = 0; i < 2; i++) {
		fl = sizeof from;
		n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
		if (n < 0)
			return fail("recvfrom after sendmmsg");
		print_from("sendmmsg", buf, n, &from);
	}
	return 0;
}

static void on_alarm(int sig) { (void)sig; }

static int udpwait(const char *ipstr, const char *port) {
	struct sockaddr_in to = addr_of(ipstr, port), from;
	struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	char buf[64];
	if (sendto(fd, "hello?", 6, 0, (struct sockaddr *)&to, sizeof to) != 6)
		return fail("sendto");
	sigaction(SIGALRM, &sa, NULL);
	alarm(1);
	socklen_t fl = sizeof from;
	if (recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl) >= 0) {
		printf("recvfrom returned a datagram\n");
		return 1;
	}
	printf("recvfrom: %s\n", errno == EINTR ? "EINTR" : strerror(errno));
	return errno == EINTR ? 0 : 1;
}

static int tfo(const char *ipstr, const char *port) {
	struct sockaddr_in to = addr_of(ipstr, port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (sendto(fd, "PING\r\n", 6, MSG_FASTOPEN, (struct sockaddr *)&to, sizeof to) != 6)
		return fail("sendto MSG_FASTOPEN");
	return ping(fd, "tfo", 1);
}

static int tfoconnect(const char *ipstr, const char *port) {
	struct sockaddr_in to = addr_of(ipstr, port);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof one) != 0)
		return fail("setsockopt TCP_FASTOPEN_CONNECT");
	if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0)
		return fail("connect");
	return ping(fd, "tfoconnect", 0);
}

static int bindconnect(const char *ipstr, const char *port) {
	struct sockaddr_in to = addr_of(ipstr, port), any = addr_of("0.0.0.0", "0");
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
		return fail("setsockopt SO_REUSEPORT");
	if (bind(fd, (struct sockaddr *)&any, sizeof any) != 0)
		return fail("bind");
	if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0)
		return fail("connect");
	return ping(fd, "bindconnect", 0);
}

static int devconnect(const char *dev, const char *ipstr, const char *port) {
	struct sockaddr_in to = addr_of(ipstr, port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, strlen(dev)) != 0)
		return fail("setsockopt SO_BINDTODEVICE");
	if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0)
		return fail("connect");
	return ping(fd, "devconnect", 0);
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "resolve"))
		return resolve(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "udp"))
		return udp(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "udpwait"))
		return udpwait(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "tfo"))
		return tfo(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "tfoconnect"))
		return tfoconnect(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "bindconnect"))
		return bindconnect(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "devconnect"))
		return devconnect(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: see the comment at the top of muslprobe.c\n");
	return 2;
}

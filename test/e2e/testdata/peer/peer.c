/* A blocking HTTP server: one accept(2) that waits, the peer and local
 * address from accept, getpeername and getsockname, one response; the
 * listener is closed at the first line on stdin, and it exits at its end.
 * Built static with musl-gcc and dynamic with glibc's gcc. */
#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *fmt(struct sockaddr_in *a, char *buf) {
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
	sprintf(buf, "%s:%d", ip, ntohs(a->sin_port));
	return buf;
}

/* A handler that must run while accept waits, which then goes on. */
static void handled(int sig) {
	(void)sig;
	static const char msg[] = "signal handled\n";
	write(1, msg, sizeof msg - 1);
}

int main(int argc, char **argv) {
	struct sigaction sa = {.sa_handler = handled, .sa_flags = SA_RESTART};
	sigaction(SIGUSR1, &sa, NULL);
	int one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
	int l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(l, (struct sockaddr *)&addr, sizeof addr) || listen(l, 16)) {
		perror("listen");
		return 1;
	}
	printf("serving pid=%d\n", getpid());
	fflush(stdout);
	struct sockaddr_in from, peer, local;
	socklen_t n = sizeof from, pn = sizeof peer, ln = sizeof local;
	int c = accept(l, (struct sockaddr *)&from, &n);
	if (c < 0 || getpeername(c, (struct sockaddr *)&peer, &pn) || getsockname(c, (struct sockaddr *)&local, &ln)) {
		perror("accept");
		return 1;
	}
	char b1[64], b2[64], b3[64];
	printf("peer from=%s getpeername=%s local=%s\n", fmt(&from, b1), fmt(&peer, b2), fmt(&local, b3));
	fflush(stdout);
	char req[4096];
	size_t got = 0;
	while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
		ssize_t r = read(c, req + got, sizeof req - 1 - got);
		if (r <= 0)
			break;
		got += r;
		req[got] = 0;
	}
	const char *res = "HTTP/1.1 200 OK\r\nX-Served-By: local-probe\r\nConnection: close\r\nContent-Length: 8\r\n\r\nlocal c\n";
	write(c, res, strlen(res));
	close(c);
	int ch;
	while ((ch = getchar()) != EOF && ch != '\n')
		;
	close(l);
	printf("closed listener\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	return 0;
}

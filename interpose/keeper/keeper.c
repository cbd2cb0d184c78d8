//go:build ignore

// The constraint keeps the go command from rejecting a C file in a Go
// package that does not use cgo; the compiler reads it as a comment.

/*
 * remocal-keeper: keeps a supervised process tree running once its
 * supervisor is gone. See keeper.go for why it exists and how it is
 * started; this is the program itself, built by `make keeper` with
 * musl-gcc -static into a few kilobytes that need nothing at run time.
 *
 *   remocal-keeper LISTENER PIPE [TABLE]
 *
 * LISTENER is a copy of the seccomp notification listener, PIPE the read
 * end of a pipe whose write end only the supervisor holds, TABLE the
 * supervisor's table of notifications received and not yet answered
 * (interpose/internal/inflight). The keeper waits until PIPE reports end
 * of file (the supervisor exited, was killed, or released it), lets every
 * call in TABLE continue, then lets every further notified call continue
 * until no supervised process is left (the listener hangs up).
 *
 * The kernel's structures and ioctl numbers are spelled out here rather
 * than taken from <linux/seccomp.h>: musl's headers do not carry the
 * kernel's, and they are ABI.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

struct notif_data {
	int32_t nr;
	uint32_t arch;
	uint64_t instruction_pointer;
	uint64_t args[6];
};

struct notif {
	uint64_t id;
	uint32_t pid;
	uint32_t flags;
	struct notif_data data;
};

struct notif_resp {
	uint64_t id;
	int64_t val;
	int32_t error;
	uint32_t flags;
};

/* _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, struct seccomp_notif_resp) */
#define NOTIF_RECV 0xc0502100UL
#define NOTIF_SEND 0xc0182101UL
#define FLAG_CONTINUE 1U

#define SYS_PRCTL_X86_64 157
#ifndef SYS_close_range
#define SYS_close_range 436 /* x86_64 */
#endif
#define TABLE_SLOTS 4096 /* inflight.Slots */

static const char took_over[] =
    "remocal: the session ended while programs it started are still running; "
    "they continue with this machine's files and network\n";

static void say(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(2, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static int parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < 0 || v > 1 << 20)
		return -1;
	return (int)v;
}

static void respond(int listener, uint64_t id, int32_t error, uint32_t flags)
{
	struct notif_resp r = {.id = id, .error = error, .flags = flags};

	/* ENOENT: answered already, or the caller is gone; nothing to do. */
	while (ioctl(listener, NOTIF_SEND, &r) < 0 && errno == EINTR)
		;
}

/* Answers the calls the supervisor had received and not answered. */
static void answer_in_flight(int listener, int table)
{
	static uint64_t ids[TABLE_SLOTS];
	size_t have = 0;

	while (have < sizeof ids) {
		ssize_t n = pread(table, (char *)ids + have, sizeof ids - have, (off_t)have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			static const char msg[] = "remocal: cannot read the supervisor's unanswered calls; a program may stay blocked in a system call\n";
			say(msg, sizeof msg - 1);
			return;
		}
		have += (size_t)n;
	}
	for (size_t i = 0; i < TABLE_SLOTS; i++)
		if (ids[i] != 0)
			respond(listener, ids[i], 0, FLAG_CONTINUE);
}

static int serve(int listener)
{
	struct pollfd p = {.fd = listener, .events = POLLIN};
	struct notif n;
	int warned = 0;

	for (;;) {
		p.revents = 0;
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (!(p.revents & POLLIN))
			return 0; /* POLLHUP: the last supervised process exited */
		memset(&n, 0, sizeof n);
		if (ioctl(listener, NOTIF_RECV, &n) < 0) {
			if (errno == ENOENT || errno == EINTR)
				continue;
			return 1;
		}
		if (!warned) {
			say(took_over, sizeof took_over - 1);
			warned = 1;
		}
		if (n.data.nr == SYS_PRCTL_X86_64) {
			/* No longer supervised: the probe must say so. */
			respond(listener, n.id, -EINVAL, 0);
			continue;
		}
		respond(listener, n.id, 0, FLAG_CONTINUE);
	}
}

int main(int argc, char **argv)
{
	int listener, pipefd, table = -1, top;
	char buf[64];

	if (argc != 3 && argc != 4)
		return 2;
	listener = parse_fd(argv[1]);
	pipefd = parse_fd(argv[2]);
	if (argc == 4)
		table = parse_fd(argv[3]);
	if (listener < 0 || pipefd < 0 || (argc == 4 && table < 0))
		return 2;
	prctl(PR_SET_NAME, "remocal-keeper", 0, 0, 0);
	/*
	 * The keeper outlives a Ctrl-C of the session on purpose: it is the
	 * one that must answer for the programs afterwards. A reader of its
	 * standard error that went away must not end it either.
	 */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	/* Whatever else was inherited (the memfd this ran from) is not ours. */
	top = listener > pipefd ? listener : pipefd;
	if (table > top)
		top = table;
	syscall(SYS_close_range, (unsigned)top + 1, ~0U, 0);

	for (;;) {
		ssize_t r = read(pipefd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
	}
	close(pipefd);
	if (table >= 0) {
		answer_in_flight(listener, table);
		close(table);
	}
	return serve(listener);
}

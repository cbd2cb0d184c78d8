//go:build ignore

// The constraint keeps the go command from rejecting a C file in a Go
// package that does not use cgo; gcc reads it as a comment.

/*
 * libremocal_bootstrap.so: makes a program join a running remocal session
 * when it is loaded with LD_PRELOAD (by a debugger or an IDE that starts the
 * program itself, so it cannot go through `remocal exec`'s launcher).
 *
 * The constructor:
 *   1. does nothing unless REMOCAL_SESSION_SOCKET names the session socket;
 *   2. does nothing if the process is already supervised: the supervisor
 *      answers the probe prctl with PROBE_ANSWER (children of a supervised
 *      process inherit its filter, and a second filter must never stack);
 *   3. connects to the session; if it cannot, warns once and lets the
 *      program run locally (the warning sets REMOCAL_BOOTSTRAP_WARNED, so
 *      children that load the library too stay quiet);
 *   4. speaks the handoff protocol (interpose/handoff/handoff.go): reads the
 *      BPF program, sets no_new_privs, installs the filter on every thread
 *      with a notification listener, and sends status 0 with the listener as
 *      SCM_RIGHTS; on failure, status 1 and a message, then warns once and
 *      the program runs locally. The one failure it cannot walk back is the
 *      session vanishing after the filter is installed and before it has
 *      the listener: the program then stops with status 126 (see the end of
 *      join_session).
 *
 * Once the filter is installed, every system call it notifies (open, stat,
 * connect, execve, ...) blocks until the supervisor has the listener: from
 * there to sendmsg only sendmsg and close are called.
 *
 * Only libc, no threads, no heap on the success path, errno preserved,
 * silent on success. x86_64 Linux; built by `make bootstrap`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC (1UL << 0)
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

/* seccomp.ProbeOption and seccomp.ProbeAnswer ("RMCL", "RMOK"). */
#define PROBE_OPTION 0x524d434cL
#define PROBE_ANSWER 0x524d4f4bL
/* seccomp.HandoffSendFlag (MSG_CMSG_CLOEXEC): the filter lets a sendmsg
 * with it through; the one that hands over the listener cannot wait for a
 * supervisor that does not have it yet. */
#define HANDOFF_SEND_FLAG 0x40000000

#define SOCKET_ENV "REMOCAL_SESSION_SOCKET"
#define WARNED_ENV "REMOCAL_BOOTSTRAP_WARNED"

/* handoff.go: status bytes; the largest program the supervisor may send. */
#define STATUS_INSTALLED 0
#define STATUS_FAILED 1
#define MAX_INSNS 4096

/* The supervisor gives up on a handoff after 10 s; so does the program. */
#define HANDOFF_TIMEOUT_SEC 10

/* In .bss: untouched pages cost nothing in processes that do not join. */
static struct sock_filter insns[MAX_INSNS];

/* A reason, formatted without allocating. */
struct text {
	char buf[512];
	size_t len;
};

static void put(struct text *t, const char *s)
{
	while (s && *s && t->len < sizeof t->buf - 1)
		t->buf[t->len++] = *s++;
	t->buf[t->len] = '\0';
}

static void put_errno(struct text *t, const char *what, int err)
{
	put(t, what);
	put(t, ": ");
	/* Only ever called before the filter is installed, or after the
	 * listener is gone: strerror may read message catalogs. */
	put(t, strerror(err));
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/*
 * warn prints one line to stderr, once per process tree: the environment
 * variable it sets is inherited by children that load the library too.
 */
static void warn(const char *verb, const char *path, const struct text *why)
{
	struct text line = {.len = 0};
	const char *warned = getenv(WARNED_ENV);
	if (warned && *warned)
		return;
	put(&line, "remocal: cannot ");
	put(&line, verb);
	put(&line, " the session at ");
	put(&line, path);
	put(&line, " (");
	put(&line, why->buf);
	put(&line, "); ");
	put(&line, program_invocation_short_name);
	put(&line, " runs without remocal\n");
	if (line.buf[line.len - 1] != '\n')
		line.buf[line.len - 1] = '\n'; /* truncated */
	write_all(STDERR_FILENO, line.buf, line.len);
	setenv(WARNED_ENV, "1", 1);
}

#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61
#endif

/*
 * allow_inspection lets the session host read this process's memory and
 * take its descriptors (process_vm_readv, pidfd_getfd), which need ptrace
 * access: under Yama ptrace_scope=1 (Ubuntu's default) only ancestors have
 * it, and a program a debugger started is not the session's descendant.
 * SO_PEERCRED names the process that listens on the session socket. Without
 * Yama the prctl fails with EINVAL, which is fine; if access is refused
 * anyway, the supervisor fails those calls with EPERM and says so.
 */
static void allow_inspection(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	int saved = errno;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0)
		prctl(PR_SET_PTRACER, (unsigned long)cred.pid, 0, 0, 0);
	errno = saved;
}

static int connect_session(const char *path, struct text *why)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct timeval timeout = {.tv_sec = HANDOFF_TIMEOUT_SEC};
	size_t n = strlen(path);
	int fd;

	if (n >= sizeof addr.sun_path) {
		put(why, "the socket path is longer than 107 bytes");
		return -1;
	}
	memcpy(addr.sun_path, path, n);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		put_errno(why, "socket", errno);
		return -1;
	}
	/* A session that accepts but never answers must not hang the program;
	 * SO_SNDTIMEO also bounds connect to a full backlog. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
	while (connect(fd, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1)) < 0) {
		if (errno == EINTR)
			continue;
		put(why, strerror(errno));
		close(fd);
		return -1;
	}
	allow_inspection(fd);
	return fd;
}

/* read_full returns 0, or an errno (0 bytes at EOF is EPIPE's job). */
static int read_full(int fd, void *p, size_t n)
{
	char *c = p;
	while (n > 0) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno;
		if (r == 0)
			return EPIPE;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* receive_program reads the uint32 little-endian length and the program. */
static int receive_program(int fd, struct sock_fprog *prog, struct text *why)
{
	unsigned char hdr[4];
	uint32_t len;
	int err = read_full(fd, hdr, sizeof hdr);
	if (err == 0) {
		len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
		if (len == 0 || len % sizeof insns[0] != 0 || len > sizeof insns) {
			put(why, "the session sent a malformed filter");
			return -1;
		}
		err = read_full(fd, insns, len);
	}
	if (err == EPIPE) {
		put(why, "the session closed the connection");
		return -1;
	}
	if (err == EAGAIN || err == EWOULDBLOCK) {
		put(why, "the session did not send the filter in time");
		return -1;
	}
	if (err != 0) {
		put_errno(why, "read the filter", err);
		return -1;
	}
	prog->len = (unsigned short)(len / sizeof insns[0]);
	prog->filter = insns;
	return 0;
}

/*
 * install_filter installs prog on every thread of the process and returns
 * the listener. Threads may exist already: libraries loaded with the
 * program are initialised before a preloaded one and may have started some.
 *
 * TSYNC with NEW_LISTENER needs TSYNC_ESRCH (Linux 5.7), WAIT_KILLABLE_RECV
 * needs 5.19; older kernels refuse unknown flags with EINVAL, so each try
 * drops the newest flag. Without TSYNC (5.0-5.6) only this thread and what
 * it starts are covered, which is all there is unless a library started
 * threads. A filter that already has a listener above it makes the kernel
 * answer EBUSY: filters never stack, whatever the probe said.
 */
static int install_filter(struct sock_fprog *prog, struct text *why)
{
	static const unsigned long tries[] = {
		SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV |
			SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
		SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
		SECCOMP_FILTER_FLAG_NEW_LISTENER,
	};
	size_t i;
	long fd = -1;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		put_errno(why, "set no_new_privs", errno);
		return -1;
	}
	for (i = 0; i < sizeof tries / sizeof tries[0]; i++) {
		fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, tries[i], prog);
		if (fd >= 0 || errno != EINVAL)
			break;
	}
	if (fd >= 0)
		return (int)fd;
	switch (errno) {
	case ESRCH:
		put(why, "another thread of the program has a seccomp filter of its own");
		break;
	case EBUSY:
		put(why, "the program already runs under a seccomp notification listener");
		break;
	case EINVAL:
		put(why, "the kernel refused the seccomp filter (Linux 5.0+ with seccomp user notification needed)");
		break;
	default:
		put_errno(why, "install the seccomp filter", errno);
	}
	return -1;
}

static int send_listener(int fd, int listener)
{
	char status = STATUS_INSTALLED;
	struct iovec iov = {.iov_base = &status, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof control.buf,
	};
	struct cmsghdr *cmsg;

	memset(&control, 0, sizeof control);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &listener, sizeof(int));
	/* MSG_NOSIGNAL: a session that went away must not SIGPIPE us. */
	while (sendmsg(fd, &msg, MSG_NOSIGNAL | HANDOFF_SEND_FLAG) < 0) {
		if (errno != EINTR)
			return errno;
	}
	return 0;
}

static void send_failure(int fd, const struct text *why)
{
	unsigned char msg[1 + 4 + sizeof why->buf];
	uint32_t n = (uint32_t)why->len;
	msg[0] = STATUS_FAILED;
	msg[1] = (unsigned char)n;
	msg[2] = (unsigned char)(n >> 8);
	msg[3] = (unsigned char)(n >> 16);
	msg[4] = (unsigned char)(n >> 24);
	memcpy(msg + 5, why->buf, n);
	while (send(fd, msg, 5 + n, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

static void join_session(void)
{
	const char *path = getenv(SOCKET_ENV);
	struct text why = {.len = 0};
	struct sock_fprog prog;
	int fd, listener, err;

	if (!path || !*path)
		return;
	/* Unsupervised, prctl rejects the option with EINVAL. */
	if (syscall(SYS_prctl, PROBE_OPTION, 0L, 0L, 0L, 0L) == PROBE_ANSWER)
		return;

	fd = connect_session(path, &why);
	if (fd < 0) {
		warn("reach", path, &why);
		return;
	}
	if (receive_program(fd, &prog, &why) != 0) {
		close(fd);
		warn("join", path, &why);
		return;
	}
	listener = install_filter(&prog, &why);
	if (listener < 0) {
		send_failure(fd, &why);
		close(fd);
		warn("join", path, &why);
		return;
	}

	/* Filter installed: nothing but sendmsg and close until the supervisor
	 * holds the listener. */
	err = send_listener(fd, listener);
	close(listener);
	close(fd);
	if (err == 0)
		return;

	/*
	 * The session went away in the middle of the handoff. The filter
	 * cannot be removed, and with its listener gone every system call it
	 * notifies fails with ENOSYS: opening files, connecting, even exec.
	 * Stopping with a clear reason beats running broken.
	 */
	{
		struct text line = {.len = 0};
		put(&line, "remocal: the session at ");
		put(&line, path);
		put(&line, " went away while ");
		put(&line, program_invocation_short_name);
		put(&line, " was joining it (");
		put(&line, strerror(err));
		put(&line, "); stopping it, since its file, network and exec system calls would now fail\n");
		write_all(STDERR_FILENO, line.buf, line.len);
		_exit(126);
	}
}

__attribute__((constructor)) static void remocal_bootstrap(void)
{
	int saved = errno;
	join_session();
	errno = saved;
}

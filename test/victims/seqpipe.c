/*
 * seqpipe.c: the two ends of a shell pipeline for godwit's end-to-end tests,
 * run as `sh -c 'seqpipe produce DIR | seqpipe consume DIR'`.
 *
 *   produce  writes the sequence 0, 1, 2, ... to stdout as 8-byte native
 *            integers, in blocks of 512 (4096 bytes, at most PIPE_BUF, so
 *            each write is atomic), for ever.
 *   consume  reads the sequence from stdin and checks that every number is
 *            the one after the last: nothing lost, nothing repeated.
 *
 * Each writes DIR/NAME.json (NAME is producer or consumer; through a
 * temporary file and rename) once at start and again on every SIGUSR1:
 *
 *   producer  {"name","pid","ppid","pgid","sid","seq","written"}
 *             written: how many numbers went into the pipe
 *   consumer  {"name","pid","ppid","pgid","sid","seq","expect","errors",
 *              "bad_got","bad_want","pending","pipe_size","paused"}
 *             expect: the next number it wants (= how many it read);
 *             errors: numbers that were not the one expected (the first is
 *             bad_got instead of bad_want); pending: bytes unread in the pipe
 *             (FIONREAD); pipe_size: the pipe's capacity (F_GETPIPE_SZ)
 *
 * SIGUSR2 makes the consumer stop reading, or start again: a paused consumer
 * lets the pipe fill up and the producer wait for room. Both wait with
 * ppoll, with SIGUSR1 and SIGUSR2 blocked outside it, so a signal is never
 * lost between a check and a wait. seq counts the reports, so a test knows a
 * new one from an old one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define BLOCK 512 /* numbers per write: 4096 bytes */

static volatile sig_atomic_t usr1, usr2;
static const char *dir;
static long seq;

static void on_usr1(int s) { (void)s; usr1 = 1; }
static void on_usr2(int s) { (void)s; usr2 = 1; }

static void die(const char *what) {
	fprintf(stderr, "seqpipe: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* report writes DIR/name.json with the common fields and then extra. */
static void report(const char *name, const char *extra) {
	char path[4096], tmp[4200];
	snprintf(path, sizeof path, "%s/%s.json", dir, name);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		die(tmp);
	seq++;
	fprintf(f, "{\"name\":\"%s\",\"pid\":%d,\"ppid\":%d,\"pgid\":%d,\"sid\":%d,\"seq\":%ld,%s}\n",
		name, getpid(), getppid(), getpgid(0), getsid(0), seq, extra);
	if (fclose(f) != 0)
		die(tmp);
	if (rename(tmp, path) != 0)
		die(path);
}

/* setup installs the handlers (without SA_RESTART) and blocks both signals;
 * *wait gets the mask to wait with, where they are unblocked. */
static void setup(sigset_t *wait) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGPIPE, SIG_DFL);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, wait);
	sigdelset(wait, SIGUSR1);
	sigdelset(wait, SIGUSR2);
}

static void produce(void) {
	sigset_t wait;
	setup(&wait);
	uint64_t buf[BLOCK];
	uint64_t written = 0; /* numbers fully in the pipe */
	size_t off = 0;       /* bytes of buf already written */
	char extra[256];
	for (int i = 0; i < BLOCK; i++)
		buf[i] = written + i;
	snprintf(extra, sizeof extra, "\"written\":%llu", (unsigned long long)written);
	report("producer", extra);
	for (;;) {
		if (usr1) {
			usr1 = 0;
			snprintf(extra, sizeof extra, "\"written\":%llu", (unsigned long long)written);
			report("producer", extra);
		}
		struct pollfd p = {.fd = 1, .events = POLLOUT};
		int n = ppoll(&p, 1, NULL, &wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("ppoll");
		if (p.revents & (POLLERR | POLLHUP))
			exit(0); /* the consumer is gone */
		/* With a free slot in the pipe, 4096 bytes fit: this does not
		 * block (and if it did, it would only delay a report). */
		ssize_t w = write(1, (char *)buf + off, sizeof buf - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("write");
		off += w;
		if (off == sizeof buf) {
			written += BLOCK;
			for (int i = 0; i < BLOCK; i++)
				buf[i] = written + i;
			off = 0;
		}
	}
}

static void consume(void) {
	sigset_t wait;
	setup(&wait);
	unsigned char buf[4096 + sizeof(uint64_t)];
	size_t have = 0; /* bytes of a partial number kept at buf's start */
	uint64_t expect = 0, errors = 0, bad_got = 0, bad_want = 0;
	int paused = 0;
	int pipe_size = fcntl(0, F_GETPIPE_SZ);
	char extra[512];
	for (int first = 1;; first = 0) {
		if (usr2) {
			usr2 = 0;
			paused = !paused;
		}
		if (usr1 || first) {
			usr1 = 0;
			int pending = -1;
			if (ioctl(0, FIONREAD, &pending) != 0)
				pending = -1;
			snprintf(extra, sizeof extra,
				"\"expect\":%llu,\"errors\":%llu,\"bad_got\":%llu,\"bad_want\":%llu,"
				"\"pending\":%d,\"pipe_size\":%d,\"paused\":%s",
				(unsigned long long)expect, (unsigned long long)errors,
				(unsigned long long)bad_got, (unsigned long long)bad_want,
				pending, pipe_size, paused ? "true" : "false");
			report("consumer", extra);
		}
		struct pollfd p = {.fd = 0, .events = POLLIN};
		/* Paused, it waits for signals only. */
		int n = ppoll(&p, paused ? 0 : 1, NULL, &wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("ppoll");
		ssize_t r = read(0, buf + have, 4096);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read");
		if (r == 0)
			exit(0); /* the producer is gone */
		have += r;
		size_t i = 0;
		for (; i + sizeof(uint64_t) <= have; i += sizeof(uint64_t)) {
			uint64_t v;
			memcpy(&v, buf + i, sizeof v);
			if (v != expect) {
				if (errors++ == 0) {
					bad_got = v;
					bad_want = expect;
				}
			}
			expect = v + 1;
		}
		memmove(buf, buf + i, have - i);
		have -= i;
	}
}

int main(int argc, char **argv) {
	if (argc != 3 || (strcmp(argv[1], "produce") != 0 && strcmp(argv[1], "consume") != 0)) {
		fprintf(stderr, "usage: seqpipe produce|consume DIR\n");
		return 2;
	}
	dir = argv[2];
	if (strcmp(argv[1], "produce") == 0)
		produce();
	else
		consume();
	return 0;
}

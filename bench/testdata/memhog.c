/*
 * memhog.c: a victim for godwit's benchmarks. It holds --mib MiB of
 * anonymous memory filled with non-zero pseudo-random words, then waits.
 *
 * It writes "ADDR LEN SUM\n" (hex address, bytes, 64-bit sum of the words)
 * to --report PATH (via PATH.tmp and rename) once the memory is filled, and
 * again, with the sum recomputed, on every SIGUSR1: a benchmark compares the
 * sums to check that a restored process holds the memory it was dumped with.
 *
 * stdin, stdout and stderr must be /dev/null or regular files for a dump to
 * work; it writes only to stderr, and only when setup fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t poked;

static void on_usr1(int sig) { (void)sig; poked = 1; }

static void die(const char *what)
{
	fprintf(stderr, "memhog: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t sum(const uint64_t *p, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += p[i] * (i | 1);
	return s;
}

static void report(const char *path, void *addr, size_t len, uint64_t s)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		die("create report");
	fprintf(f, "%lx %zu %lx\n", (unsigned long)addr, len, (unsigned long)s);
	if (fclose(f) != 0)
		die("write report");
	if (rename(tmp, path) != 0)
		die("rename report");
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	long mib = 64;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--mib") == 0)
			mib = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--report") == 0)
			path = argv[i + 1];
	}
	if (!path || mib <= 0) {
		fprintf(stderr, "usage: memhog --mib N --report PATH\n");
		return 2;
	}
	size_t len = (size_t)mib << 20;
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < len / 8; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64: never 0 */
		p[i] = x;
	}

	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	struct sigaction sa = {.sa_handler = on_usr1};
	sigaction(SIGUSR1, &sa, NULL);

	report(path, p, len, sum(p, len / 8));
	for (;;) {
		while (!poked)
			sigsuspend(&old);
		poked = 0;
		report(path, p, len, sum(p, len / 8));
	}
}

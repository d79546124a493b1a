// memvictim: a program whose memory the tests of package mem track and
// serve. It reads one command per line on stdin and answers one line on
// stdout; between commands it is blocked in read(2) on stdin.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static volatile sig_atomic_t got_sig, got_code;
static volatile long got_value;

static void on_sig(int sig, siginfo_t *si, void *uc) {
	(void)uc;
	got_sig = sig;
	got_code = si->si_code;
	got_value = (long)si->si_value.sival_ptr;
}

static uint64_t word(uint64_t seed, uint64_t page, uint64_t j) {
	return seed * 1000003ULL + page * 4099ULL + j;
}

static uint64_t fnv(const uint64_t *w, size_t n) {
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= w[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int main(void) {
	char *line = NULL;
	size_t cap = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	for (;;) {
		errno = 0;
		ssize_t len = getline(&line, &cap, stdin);
		if (len < 0) {
			if (errno == EINTR) {
				printf("EINTR\n");
				return 3;
			}
			return 0;
		}
		char cmd[32] = "";
		unsigned long a = 0, n = 0, x = 0;
		int off = 0;
		sscanf(line, "%31s %lx %lu %lu%n", cmd, &a, &n, &x, &off);
		uint64_t *w = (uint64_t *)a;
		if (!strcmp(cmd, "map") || !strcmp(cmd, "maphuge") || !strcmp(cmd, "mapshared")) {
			// map ignored N: N pages of anonymous memory
			int flags = MAP_ANONYMOUS | (strcmp(cmd, "mapshared") ? MAP_PRIVATE : MAP_SHARED);
			void *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, flags, -1, 0);
			if (p == MAP_FAILED) {
				printf("err %d\n", errno);
				continue;
			}
			madvise(p, n * PAGE, strcmp(cmd, "maphuge") ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
			printf("addr %lx\n", (unsigned long)p);
		} else if (!strcmp(cmd, "mapfixed")) {
			// mapfixed A N: new private anonymous memory in place of [A, +N pages)
			void *p = mmap((void *)a, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			if (p == MAP_FAILED)
				printf("err %d\n", errno);
			else
				printf("addr %lx\n", (unsigned long)p);
		} else if (!strcmp(cmd, "mapdroppable")) {
			// mapdroppable ignored N: MAP_DROPPABLE (Linux 6.11), which userfaultfd refuses
			void *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, 0x08 | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				printf("err %d\n", errno);
			else
				printf("addr %lx\n", (unsigned long)p);
		} else if (!strcmp(cmd, "fill")) {
			// fill A N SEED: every word of N pages
			for (unsigned long i = 0; i < n; i++)
				for (unsigned long j = 0; j < PAGE / 8; j++)
					w[i * PAGE / 8 + j] = word(x, i, j);
			printf("ok\n");
		} else if (!strcmp(cmd, "poke")) {
			// poke A I J K ...: add 1 to the second word of those pages
			char *s = line + strlen("poke");
			strtoul(s, &s, 16);
			for (;;) {
				char *e;
				unsigned long i = strtoul(s, &e, 10);
				if (e == s)
					break;
				w[i * PAGE / 8 + 1]++;
				s = e;
			}
			printf("ok\n");
		} else if (!strcmp(cmd, "pokestride")) {
			// pokestride A N STRIDE: poke pages 0, STRIDE, 2*STRIDE... below N
			// answers "ok COUNT NS", NS the time the writes took
			unsigned long c = 0;
			int64_t t0 = now_ns();
			for (unsigned long i = 0; i < n; i += x, c++)
				w[i * PAGE / 8 + 1]++;
			printf("ok %lu %lld\n", c, (long long)(now_ns() - t0));
		} else if (!strcmp(cmd, "sum")) {
			printf("sum %lu\n", (unsigned long)fnv(w, n * PAGE / 8));
		} else if (!strcmp(cmd, "uffd")) {
			// uffd ignored FLAGS
			long fd = syscall(SYS_userfaultfd, (int)n);
			if (fd < 0)
				printf("err %d\n", errno);
			else
				printf("fd %ld\n", fd);
		} else if (!strcmp(cmd, "pipefill")) {
			// pipefill A N SEED: the kernel writes the pages (read(2) from a pipe)
			int p[2];
			uint64_t buf[PAGE / 8];
			if (pipe(p) < 0) {
				printf("err %d\n", errno);
				continue;
			}
			int bad = 0;
			for (unsigned long i = 0; i < n && !bad; i++) {
				for (unsigned long j = 0; j < PAGE / 8; j++)
					buf[j] = word(x, i, j);
				if (write(p[1], buf, PAGE) != (ssize_t)PAGE || read(p[0], (char *)a + i * PAGE, PAGE) != (ssize_t)PAGE)
					bad = errno;
			}
			close(p[0]);
			close(p[1]);
			if (bad)
				printf("err %d\n", bad);
			else
				printf("ok\n");
		} else if (!strcmp(cmd, "dontneed")) {
			printf(madvise((void *)a, n * PAGE, MADV_DONTNEED) ? "err\n" : "ok\n");
		} else if (!strcmp(cmd, "unmap")) {
			printf(munmap((void *)a, n * PAGE) ? "err\n" : "ok\n");
		} else if (!strcmp(cmd, "remap")) {
			// remap A N NEWN: mremap, letting it move
			void *p = mremap((void *)a, n * PAGE, x * PAGE, MREMAP_MAYMOVE);
			if (p == MAP_FAILED)
				printf("err %d\n", errno);
			else
				printf("addr %lx\n", (unsigned long)p);
		} else if (!strcmp(cmd, "sigusr1")) {
			struct sigaction sa = {0};
			sa.sa_sigaction = on_sig;
			sa.sa_flags = SA_SIGINFO | SA_RESTART;
			sigaction(SIGUSR1, &sa, NULL);
			printf("ok\n");
		} else if (!strcmp(cmd, "sigs")) {
			if (got_sig)
				printf("sig %d code %d value %ld\n", (int)got_sig, (int)got_code, got_value);
			else
				printf("none\n");
		} else if (!strcmp(cmd, "sleep")) {
			// sleep ignored MS
			struct timespec ts = {n / 1000, (n % 1000) * 1000000};
			printf("sleeping\n");
			int64_t t0 = now_ns();
			int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
			printf("slept %lld %d\n", (long long)((now_ns() - t0) / 1000000), r);
		} else if (!strcmp(cmd, "touchtime")) {
			// touchtime A N: read one byte of each page, timing each
			int64_t *lat = malloc(n * sizeof *lat);
			volatile char *c = (volatile char *)a;
			int64_t t0 = now_ns();
			for (unsigned long i = 0; i < n; i++) {
				int64_t s = now_ns();
				(void)c[i * PAGE];
				lat[i] = now_ns() - s;
			}
			int64_t total = now_ns() - t0;
			qsort(lat, n, sizeof *lat, cmp64);
			printf("lat %lld %lld %lld %lld\n", (long long)lat[n / 2], (long long)lat[n * 99 / 100],
			       (long long)lat[n - 1], (long long)total);
			free(lat);
		} else if (!strcmp(cmd, "exit")) {
			return 0;
		} else {
			printf("unknown %s\n", cmd);
		}
	}
}

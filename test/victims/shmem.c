/*
 * shmem.c: two processes sharing anonymous memory, for godwit's end-to-end
 * tests.
 *
 * The parent maps MiB mebibytes (default 4) MAP_SHARED|MAP_ANONYMOUS, fills
 * the first half with a pseudo-random pattern, and forks; the child fills the
 * second half. The first page is a header where each side keeps a token and
 * a tick counter that it alone writes:
 *
 *   - every millisecond each side increments its ticks;
 *   - on SIGUSR2 a side reads a number from DIR/NAME.token and stores it as
 *     its token (NAME is parent or child);
 *   - on SIGUSR1 a side writes DIR/NAME.json (through a temporary file and
 *     rename):
 *     {"name","pid","ppid","seq","addr","size","token","ticks",
 *      "peer_token","peer_ticks","sum","pattern_ok"}
 *     where token and ticks are its own, peer_token and peer_ticks what it
 *     reads of the other side's in the shared page, sum an FNV-1a hash of
 *     the data after the header and pattern_ok whether both halves still
 *     hold the patterns written at start. Each side also writes a first
 *     report (seq 1) when the memory is ready.
 *
 * A token written by one side and reported by the other proves the memory is
 * shared; after a restore, a new token doing the same proves it was restored
 * shared, not as two private copies.
 *
 * Usage: shmem DIR [MiB]
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

#define HEADER 4096

struct header {
	volatile uint64_t token[2]; /* [0] parent, [1] child */
	volatile uint64_t ticks[2];
};

static volatile sig_atomic_t usr1, usr2;
static const char *dir;
static unsigned char *mem;
static size_t size;

static void on_usr1(int s) { (void)s; usr1 = 1; }
static void on_usr2(int s) { (void)s; usr2 = 1; }

static void die(const char *what) {
	fprintf(stderr, "shmem: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* pattern writes the pattern of half h (0 or 1) into buf, or, with check set,
 * reports whether buf still holds it. */
static int pattern(unsigned char *buf, size_t n, int h, int check) {
	uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(h + 1);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		unsigned char b = (unsigned char)(x >> 32);
		if (check && buf[i] != b)
			return 0;
		if (!check)
			buf[i] = b;
	}
	return 1;
}

static uint64_t fnv(const unsigned char *p, size_t n) {
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void loop(const char *name, int me) {
	struct header *hdr = (struct header *)mem;
	size_t half = (size - HEADER) / 2;
	long seq = 0;
	for (int first = 1;; first = 0) {
		hdr->ticks[me]++;
		if (usr2) {
			usr2 = 0;
			char path[4096];
			snprintf(path, sizeof path, "%s/%s.token", dir, name);
			FILE *f = fopen(path, "r");
			unsigned long long v;
			if (f) {
				if (fscanf(f, "%llu", &v) == 1)
					hdr->token[me] = v;
				fclose(f);
			}
		}
		if (usr1 || first) {
			usr1 = 0;
			char path[4096], tmp[4200];
			snprintf(path, sizeof path, "%s/%s.json", dir, name);
			snprintf(tmp, sizeof tmp, "%s.tmp", path);
			FILE *f = fopen(tmp, "w");
			if (!f)
				die(tmp);
			int ok = pattern(mem + HEADER, half, 0, 1) && pattern(mem + HEADER + half, half, 1, 1);
			fprintf(f, "{\"name\":\"%s\",\"pid\":%d,\"ppid\":%d,\"seq\":%ld,\"addr\":\"%p\",\"size\":%zu,"
				"\"token\":%llu,\"ticks\":%llu,\"peer_token\":%llu,\"peer_ticks\":%llu,"
				"\"sum\":\"%016llx\",\"pattern_ok\":%s}\n",
				name, getpid(), getppid(), ++seq, (void *)mem, size,
				(unsigned long long)hdr->token[me], (unsigned long long)hdr->ticks[me],
				(unsigned long long)hdr->token[!me], (unsigned long long)hdr->ticks[!me],
				(unsigned long long)fnv(mem + HEADER, size - HEADER), ok ? "true" : "false");
			if (fclose(f) != 0)
				die(tmp);
			if (rename(tmp, path) != 0)
				die(path);
		}
		usleep(1000);
	}
}

int main(int argc, char **argv) {
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: shmem DIR [MiB]\n");
		return 2;
	}
	dir = argv[1];
	size = (size_t)(argc == 3 ? atoi(argv[2]) : 4) << 20;
	if (size < 2 * HEADER) {
		fprintf(stderr, "shmem: size too small\n");
		return 2;
	}
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	size_t half = (size - HEADER) / 2;
	pattern(mem + HEADER, half, 0, 0);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		pattern(mem + HEADER + half, half, 1, 0);
		loop("child", 1);
	}
	/* The parent reports once the child has filled its half. */
	struct header *hdr = (struct header *)mem;
	while (hdr->ticks[1] == 0)
		usleep(1000);
	loop("parent", 0);
	return 0;
}

/*
 * secret.c: a victim holding a memfd_secret mapping, whose pages the kernel
 * hides from every other process, so a dump must refuse it.
 *
 * Usage: secret --report PATH
 * Writes {"pid":N,"addr":"0x..."} to PATH (PATH.tmp, then rename) once the
 * mapping holds data, then sleeps forever. Exits with status 3 and a message
 * on stderr when memfd_secret is unavailable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

int main(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "--report")) {
		fprintf(stderr, "usage: secret --report PATH\n");
		return 2;
	}
	int fd = (int)syscall(SYS_memfd_secret, 0);
	if (fd < 0) {
		fprintf(stderr, "memfd_secret unavailable: %s\n", strerror(errno));
		return 3;
	}
	size_t len = 4096;
	if (ftruncate(fd, (off_t)len) < 0) {
		fprintf(stderr, "memfd_secret unavailable: ftruncate: %s\n", strerror(errno));
		return 3;
	}
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "memfd_secret unavailable: mmap: %s\n", strerror(errno));
		return 3;
	}
	close(fd);
	strcpy(p, "a secret");

	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "{\"pid\":%d,\"addr\":\"%p\"}\n", getpid(), (void *)p) < 0 || fclose(f) ||
	    rename(tmp, argv[2])) {
		perror("secret: report");
		return 1;
	}
	for (;;) {
		struct timespec ts = {1, 0};
		nanosleep(&ts, NULL);
		if (p[0] != 'a')
			return 4;
	}
}

// clonetree: a parent and a child made by clone(2) without CLONE_THREAD but
// sharing kernel state, for godwit's end-to-end tests: godwit refuses such a
// tree (restore would give each process its own).
//
// Usage: clonetree DIR MODE, MODE one of
//   files    clone(CLONE_FILES|SIGCHLD): one descriptor table
//   fs       clone(CLONE_FS|SIGCHLD): one root, working directory and umask
//   sighand  clone(CLONE_VM|CLONE_SIGHAND|SIGCHLD): one address space and
//            one table of signal handlers
//   none     clone(SIGCHLD): nothing shared (a plain fork)
// The parent writes the child's pid into DIR/ready once the child runs; both
// then sleep until killed.
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static char stack[1 << 16] __attribute__((aligned(16)));
static volatile int started;

static int child(void *arg) {
	(void)arg;
	started = 1; // seen by the parent only when they share the memory
	for (;;)
		pause();
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: clonetree DIR files|fs|sighand|none\n");
		return 2;
	}
	int flags = SIGCHLD;
	if (strcmp(argv[2], "files") == 0)
		flags |= CLONE_FILES;
	else if (strcmp(argv[2], "fs") == 0)
		flags |= CLONE_FS;
	else if (strcmp(argv[2], "sighand") == 0)
		flags |= CLONE_VM | CLONE_SIGHAND;
	else if (strcmp(argv[2], "none") != 0) {
		fprintf(stderr, "unknown mode %s\n", argv[2]);
		return 2;
	}
	pid_t pid = clone(child, stack + sizeof stack, flags, NULL);
	if (pid < 0) {
		perror("clone");
		return 1;
	}
	char path[4096], tmp[4200];
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return 1;
	fprintf(f, "%d\n", pid);
	fclose(f);
	rename(tmp, path);
	for (;;)
		pause();
}

/*
 * rusage.c: runs a program and reports its peak memory and CPU time.
 *
 *   rusage OUT PROGRAM [ARG...]
 *
 * It forks (a real fork: this process is small), runs PROGRAM in the child,
 * waits for it and writes "MAXRSS_KIB UTIME_US STIME_US" to OUT, then exits
 * with the child's status. A benchmark runs godwit through it because a
 * child's ru_maxrss includes the peak memory of the address space it was
 * forked from, and that of a test process holding large buffers would hide
 * godwit's own.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: rusage OUT PROGRAM [ARG...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("rusage: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror("rusage: exec");
		_exit(127);
	}
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) != pid) {
		perror("rusage: wait4");
		return 2;
	}
	FILE *f = fopen(argv[1], "w");
	if (!f || fprintf(f, "%ld %ld %ld\n", ru.ru_maxrss,
			  (long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
			  (long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec) < 0 ||
	    fclose(f) != 0) {
		perror("rusage: write");
		return 2;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

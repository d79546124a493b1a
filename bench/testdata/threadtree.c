/*
 * threadtree.c: a victim for BenchmarkFreezeTree. The root forks --procs - 1
 * children (so the tree has --procs processes: the root and its children),
 * and every process of it, the root included, starts --threads - 1 extra
 * threads, then its main thread waits in pause() for ever.
 *
 * The extra threads rotate over three kinds, so that a freeze meets threads
 * in different states, while the whole tree stays light on the CPU (about a
 * fifth of one core for 100 processes):
 *
 *   0: spins for about 100 us (reading the clock), then sleeps 50 ms;
 *   1: sleeps 10 ms at a time (clock_nanosleep);
 *   2: waits 100 ms at a time on a condition variable nobody signals (futex).
 *
 * Every child sets PR_SET_PDEATHSIG to SIGKILL, so the tree dies with its
 * root. It writes nothing; stdin, stdout and stderr should be /dev/null.
 * The benchmark finds the tree through /proc and waits until every thread
 * exists.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void sleep_ns(long ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L};
	clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

static void *spinner(void *arg)
{
	(void)arg;
	for (;;) {
		long end = now_ns() + 100000;
		while (now_ns() < end)
			;
		sleep_ns(50000000L);
	}
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		sleep_ns(10000000L);
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cv, &ca);
	pthread_mutex_lock(&mu);
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cv, &mu, &ts);
	}
	return NULL;
}

static void run(int threads)
{
	void *(*kinds[])(void *) = {spinner, sleeper, waiter};
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	for (int i = 0; i < threads - 1; i++) {
		pthread_t t;
		int err = pthread_create(&t, &attr, kinds[i % 3], NULL);
		if (err != 0) {
			fprintf(stderr, "threadtree: pthread_create: %s\n", strerror(err));
			exit(1);
		}
	}
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	int procs = 100, threads = 4;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--procs") == 0)
			procs = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--threads") == 0)
			threads = atoi(argv[i + 1]);
	}
	if (procs < 1 || threads < 1) {
		fprintf(stderr, "usage: threadtree --procs N --threads T\n");
		return 2;
	}
	pid_t root = getpid();
	for (int i = 1; i < procs; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("threadtree: fork");
			return 1;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != root)
				_exit(1); /* the root died before the prctl */
			run(threads);
		}
	}
	run(threads);
	return 0;
}

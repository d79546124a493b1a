#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <time.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/signalfd.h>
#include <sys/inotify.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <sys/stat.h>

static volatile pid_t worker_tid;
static void *worker(void *arg) {
	prctl(PR_SET_NAME, "worker (1)", 0, 0, 0);
	worker_tid = syscall(SYS_gettid);
	for (;;) pause();
	return NULL;
}

static void mapfile(const char *path, int del, int shared) {
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) { perror(path); exit(1); }
	ftruncate(fd, 8192);
	void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) { perror("mmap"); exit(1); }
	((char *)p)[0] = 1;
	close(fd);
	if (del) unlink(path);
}

static timer_t mktimer(clockid_t clk, int notify, int signo, void *val, int tid) {
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = notify;
	sev.sigev_signo = signo;
	sev.sigev_value.sival_ptr = val;
	sev._sigev_un._tid = tid;
	int id;
	/* raw syscall so SIGEV_THREAD reaches the kernel unchanged */
	if (syscall(SYS_timer_create, clk, &sev, &id) < 0) { perror("timer_create"); exit(1); }
	struct itimerspec its = { .it_value = { 1000, 0 }, .it_interval = { 5, 0 } };
	syscall(SYS_timer_settime, id, 0, &its, NULL);
	return (timer_t)(long)id;
}

int main(int argc, char **argv) {
	const char *dir = argv[1];
	char path[512];
	prctl(PR_SET_NAME, argc > 2 ? argv[2] : "a b) (c) d", 0, 0, 0);

	pthread_t th;
	pthread_create(&th, NULL, worker, NULL);
	while (!worker_tid) usleep(1000);

	/* timers */
	mktimer(CLOCK_REALTIME, SIGEV_SIGNAL, SIGALRM, (void *)0, 0);
	mktimer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 3, (void *)0xdeadbeefcafeUL, 0);
	mktimer(CLOCK_BOOTTIME, SIGEV_NONE, 0, NULL, 0);
	mktimer(CLOCK_MONOTONIC, SIGEV_SIGNAL | SIGEV_THREAD_ID, SIGUSR1, (void *)0x1234, worker_tid);
	mktimer(CLOCK_PROCESS_CPUTIME_ID, SIGEV_THREAD, SIGUSR2, (void *)0xffffffffffffffffUL, 0);
	clockid_t tclk; pthread_getcpuclockid(th, &tclk);
	mktimer(tclk, SIGEV_SIGNAL, SIGPROF, NULL, 0);
	clockid_t pclk; clock_getcpuclockid(getppid(), &pclk);
	mktimer(pclk, SIGEV_SIGNAL, SIGVTALRM, NULL, 0);

	signal(SIGALRM, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	sigset_t ss; sigemptyset(&ss); sigaddset(&ss, SIGUSR2); sigaddset(&ss, SIGRTMIN + 3);
	sigprocmask(SIG_BLOCK, &ss, NULL);

	/* mappings */
	snprintf(path, sizeof path, "%s/deleted file", dir); mapfile(path, 1, 0);
	snprintf(path, sizeof path, "%s/shared file", dir); mapfile(path, 0, 1);
	snprintf(path, sizeof path, "%s/new\nline", dir); mapfile(path, 0, 0);
	snprintf(path, sizeof path, "%s/x (deleted)", dir); mapfile(path, 0, 0);
	int mfd = memfd_create("godwit memfd", 0); ftruncate(mfd, 4096);
	mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	int shmid = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	shmat(shmid, NULL, 0); shmctl(shmid, IPC_RMID, NULL);
	void *g = mmap(NULL, 3 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect((char *)g + 4096, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
	void *l = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_GROWSDOWN, -1, 0);
	(void)l;
	void *d = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(d, 8192, MADV_DONTFORK); madvise(d, 4096, MADV_DONTDUMP);
	memset(d, 1, 8192);

	/* fds */
	int efd = eventfd(7, EFD_CLOEXEC | EFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	struct itimerspec its = { .it_value = { 100, 0 }, .it_interval = { 3, 500 } };
	timerfd_settime(tfd, 0, &its, NULL);
	sigset_t sfs; sigemptyset(&sfs); sigaddset(&sfs, SIGUSR2); sigaddset(&sfs, SIGCHLD);
	int sfd = signalfd(-1, &sfs, SFD_NONBLOCK);
	int ifd = inotify_init1(0);
	inotify_add_watch(ifd, dir, IN_CREATE | IN_DELETE);
	int epfd = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = 0x42 };
	epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev);
	epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
	int p[2]; pipe2(p, O_NONBLOCK);
	int sv[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	snprintf(path, sizeof path, "%s/locked", dir);
	int lfd = open(path, O_RDWR | O_CREAT | O_APPEND, 0600);
	write(lfd, "hello", 5); lseek(lfd, 3, SEEK_SET);
	flock(lfd, LOCK_EX);
	(void)efd; (void)sfd; (void)epfd;

	/* limits */
	struct rlimit rl = { 1024, 4096 }; setrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = RLIM_INFINITY; rl.rlim_max = RLIM_INFINITY; setrlimit(RLIMIT_CORE, &rl);
	rl.rlim_cur = 100; rl.rlim_max = 200; setrlimit(RLIMIT_CPU, &rl);
	umask(027);

	/* children: one zombie, one sleeping, and one child of the worker thread */
	pid_t z = fork(); if (z == 0) { prctl(PR_SET_NAME, "zombie)", 0, 0, 0); _exit(3); }
	pid_t s = fork(); if (s == 0) { prctl(PR_SET_NAME, "sleeper", 0, 0, 0); for (;;) pause(); }
	usleep(100000);
	int pfd = syscall(SYS_pidfd_open, s, 0);
	(void)pfd;

	printf("%d %d %d %d\n", getpid(), worker_tid, z, s);
	printf("fds eventfd=%d timerfd=%d signalfd=%d inotify=%d epoll=%d pipe=%d socket=%d locked=%d memfd=%d pidfd=%d\n",
	       efd, tfd, sfd, ifd, epfd, p[0], sv[0], lfd, mfd, pfd);
	fflush(stdout);
	for (;;) pause();
}

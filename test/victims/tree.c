// tree: a process tree for godwit's end-to-end tests.
//
//   root (session leader, child-subreaper, holds a file shared by all)
//   ├── child1
//   │   └── grandchild
//   ├── child2 (its own session)
//   ├── zombie-exit   (exited with status 7, not reaped)
//   ├── zombie-signal (killed by SIGTERM, not reaped)
//   ├── middle        (exited, not reaped; its child was reparented to root)
//   └── orphan        (reparented to root, the subreaper)
//
// Usage: tree DIR. The root creates DIR/ready once the tree is built. Every live process writes DIR/NAME.json on SIGUSR1
// (through a temporary file and rename). On SIGUSR2 child1 moves the shared
// file offset by one: every process sees it, since they share one open file
// description. The root also reports its zombies' wait statuses, read with
// WNOWAIT so they stay zombies.
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, usr2;
static int fd;
static const char *dir;
static pid_t zexit, zsig, middle;

static void on_usr1(int s) { (void)s; usr1 = 1; }
static void on_usr2(int s) { (void)s; usr2 = 1; }

static int zstatus(pid_t pid) {
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, pid, &si, WEXITED | WNOWAIT) != 0)
		return -1;
	return si.si_code == CLD_EXITED ? si.si_status : 1000 + si.si_status;
}

static void loop(const char *name) {
	long n = 0;
	for (;;) {
		n++;
		if (usr2 && strcmp(name, "child1") == 0) {
			usr2 = 0;
			lseek(fd, 1, SEEK_CUR);
		}
		if (usr1) {
			usr1 = 0;
			char path[4096], tmp[4096];
			snprintf(path, sizeof path, "%s/%s.json", dir, name);
			snprintf(tmp, sizeof tmp, "%s.tmp", path);
			FILE *f = fopen(tmp, "w");
			if (f) {
				fprintf(f, "{\"name\":\"%s\",\"pid\":%d,\"ppid\":%d,\"pgid\":%d,\"sid\":%d,\"n\":%ld,\"off\":%ld",
					name, getpid(), getppid(), getpgid(0), getsid(0), n, (long)lseek(fd, 0, SEEK_CUR));
				if (strcmp(name, "root") == 0)
					fprintf(f, ",\"zexit\":%d,\"zexit_status\":%d,\"zsig\":%d,\"zsig_status\":%d,\"middle\":%d,\"middle_status\":%d",
						zexit, zstatus(zexit), zsig, zstatus(zsig), middle, zstatus(middle));
				fprintf(f, "}\n");
				fclose(f);
				rename(tmp, path);
			}
		}
		usleep(1000);
	}
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: tree DIR\n");
		return 2;
	}
	dir = argv[1];
	setsid();
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	char path[4096];
	snprintf(path, sizeof path, "%s/shared", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "0123456789", 10) != 10)
		return 1;
	lseek(fd, 2, SEEK_SET);
	if (fork() == 0) {
		if (fork() == 0)
			loop("grandchild");
		loop("child1");
	}
	if (fork() == 0) {
		setsid();
		loop("child2");
	}
	if ((zexit = fork()) == 0)
		_exit(7);
	if ((zsig = fork()) == 0) {
		signal(SIGTERM, SIG_DFL);
		kill(getpid(), SIGTERM);
		pause();
	}
	if ((middle = fork()) == 0) {
		if (fork() == 0)
			loop("orphan");
		_exit(0);
	}
	// Ready once the zombies are zombies (and the orphan is reparented):
	// every process has its handlers (set before the forks).
	zstatus(zexit);
	zstatus(zsig);
	zstatus(middle);
	snprintf(path, sizeof path, "%s/ready", dir);
	close(open(path, O_WRONLY | O_CREAT, 0644));
	loop("root");
}

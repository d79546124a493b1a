// sysvshm: two processes that share SysV shared memory, for godwit's
// end-to-end tests.
//
//   parent: creates segment A (a key, mode 0640, 3 pages and 100 bytes,
//           filled with a pattern) and segment B (private, one page, removed
//           with IPC_RMID while attached), attaches both, forks:
//   child:  inherits both attachments and, to split one, makes the last page
//           of its attachment of A read-only.
//
// Usage: sysvshm DIR. The parent creates DIR/ready once the child runs.
// On SIGUSR1 each process writes DIR/NAME.json (through a temporary file and
// rename): its pid, the segments' ids and addresses, a checksum of A's
// pattern, the text in B, and the message slot of A. On SIGUSR2 a process
// writes "NAME:N" (N its loop counter) into the message slot of A, which the
// other one then reports.
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#define ASIZE (3 * 4096 + 100)
#define SLOT 4096 // offset of the message slot in A
#define SLOTLEN 64

static volatile sig_atomic_t usr1, usr2;
static const char *dir;
static int ida, idb;
static unsigned char *a;
static char *b;

static void on_usr1(int s) { (void)s; usr1 = 1; }
static void on_usr2(int s) { (void)s; usr2 = 1; }

static unsigned char pattern(size_t i) { return (unsigned char)(i * 31 + 7); }

// sum checks A's pattern everywhere but in the message slot.
static long sum(void) {
	long bad = 0;
	for (size_t i = 0; i < ASIZE; i++)
		if ((i < SLOT || i >= SLOT + SLOTLEN) && a[i] != pattern(i))
			bad++;
	return bad;
}

static void loop(const char *name) {
	long n = 0;
	for (;;) {
		n++;
		if (usr2) {
			usr2 = 0;
			snprintf((char *)a + SLOT, SLOTLEN, "%s:%ld", name, n);
		}
		if (usr1) {
			usr1 = 0;
			char path[4096], tmp[4200], slot[SLOTLEN + 1];
			memcpy(slot, a + SLOT, SLOTLEN);
			slot[SLOTLEN] = 0;
			snprintf(path, sizeof path, "%s/%s.json", dir, name);
			snprintf(tmp, sizeof tmp, "%s.tmp", path);
			FILE *f = fopen(tmp, "w");
			if (f) {
				fprintf(f, "{\"name\":\"%s\",\"pid\":%d,\"n\":%ld,\"ida\":%d,\"idb\":%d,\"a\":%lu,\"b\":%lu,"
					"\"bad\":%ld,\"btext\":\"%s\",\"slot\":\"%s\"}\n",
					name, getpid(), n, ida, idb, (unsigned long)a, (unsigned long)b, sum(), b, slot);
				fclose(f);
				rename(tmp, path);
			}
		}
		usleep(1000);
	}
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: sysvshm DIR\n");
		return 2;
	}
	dir = argv[1];
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	key_t key = 0x60d00000 | (getpid() & 0xfffff);
	ida = shmget(key, ASIZE, IPC_CREAT | IPC_EXCL | 0640);
	idb = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (ida < 0 || idb < 0) {
		perror("shmget");
		return 1;
	}
	a = shmat(ida, NULL, 0);
	b = shmat(idb, NULL, 0);
	if (a == (void *)-1 || b == (void *)-1) {
		perror("shmat");
		return 1;
	}
	for (size_t i = 0; i < ASIZE; i++)
		a[i] = pattern(i);
	memset(a + SLOT, 0, SLOTLEN);
	strcpy(b, "segment B, removed while attached");
	shmctl(idb, IPC_RMID, NULL);
	if (fork() == 0) {
		if (mprotect(a + 3 * 4096, 4096, PROT_READ) != 0) {
			perror("mprotect");
			return 1;
		}
		char path[4096];
		snprintf(path, sizeof path, "%s/ready", dir);
		close(open(path, O_WRONLY | O_CREAT, 0644));
		loop("child");
	}
	loop("parent");
}

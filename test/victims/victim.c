/*
 * victim.c: a process for godwit's end-to-end tests to checkpoint and restore.
 *
 * It holds the kinds of state a checkpoint must carry (threads with
 * thread-local counters, vector registers, memory, file descriptors, sleeping
 * threads, timers, signal state, rseq, comm, umask, cwd) and checks that state
 * itself. On every SIGUSR1 the main thread writes a JSON report to
 * --report PATH (to PATH.tmp, then rename), so a test can compare what the
 * process saw before a dump and after a restore. A first report (seq 1) is
 * written once setup is complete: its appearance means "ready".
 *
 * Flags:
 *   --report PATH   where reports go (required); the process also chdirs to
 *                   PATH's directory
 *   --threads N     N worker threads besides the main thread
 *   --simd          the workers keep a pattern in vector registers (simd.h)
 *   --simd-avx     like --simd, with the AVX register set even where
 *                   AVX-512 is available
 *   --simd-selftest one worker clobbers a register on purpose: simd_ok must
 *                   turn false (proves the check can fail)
 *   --mem MiB       a buffer of pseudo-random data, explicitly zeroed pages
 *                   and never-touched pages
 *   --file PATH     an O_APPEND fd, an O_RDONLY fd at offset 123, an O_PATH fd
 *                   to PATH's directory and a deleted-but-open file
 *   --sleeper       one thread in nanosleep(60 s), one in pthread_cond_wait
 *   --timers        ITIMER_REAL and a CLOCK_MONOTONIC POSIX timer, 50 ms
 *   --signals       SIGUSR2 blocked and pending (value 42), a sigaltstack,
 *                   SIGUSR1 handled on it, SIGPIPE ignored
 *
 * stdin, stdout and stderr must not be pipes or ttys for a dump to work; the
 * victim never writes to stdout, and to stderr only when setup fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "simd.h"

#define MAX_THREADS 64
#define COMM "godwit-victim"
#define UMASK 027
#define RDONLY_OFFSET 123
#define TIMER_NS (50 * 1000 * 1000L)

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "victim: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", strerror(errno));
	va_end(ap);
	exit(1);
}

/* ---- options ---------------------------------------------------------- */

static struct {
	const char *report;
	int threads;
	int simd, simd_selftest, simd_avx;
	long mem_mib;
	const char *file;
	int sleeper, timers, signals;
} opt;

static void parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--report") && next)
			opt.report = argv[++i];
		else if (!strcmp(a, "--threads") && next)
			opt.threads = atoi(argv[++i]);
		else if (!strcmp(a, "--mem") && next)
			opt.mem_mib = atol(argv[++i]);
		else if (!strcmp(a, "--file") && next)
			opt.file = argv[++i];
		else if (!strcmp(a, "--simd"))
			opt.simd = 1;
		else if (!strcmp(a, "--simd-selftest"))
			opt.simd = opt.simd_selftest = 1;
		else if (!strcmp(a, "--simd-avx"))
			opt.simd = opt.simd_avx = 1;
		else if (!strcmp(a, "--sleeper"))
			opt.sleeper = 1;
		else if (!strcmp(a, "--timers"))
			opt.timers = 1;
		else if (!strcmp(a, "--signals"))
			opt.signals = 1;
		else {
			fprintf(stderr, "victim: bad argument %s\n", a);
			exit(2);
		}
	}
	if (!opt.report || opt.threads < 0 || opt.threads > MAX_THREADS - 3) {
		fprintf(stderr, "victim: need --report PATH and 0 <= --threads <= %d\n", MAX_THREADS - 3);
		exit(2);
	}
	if (opt.simd && opt.threads == 0)
		opt.threads = 1;
}

/* ---- threads ---------------------------------------------------------- */

/* tids[0] is the main thread, then workers, then sleepers (in start order). */
static volatile pid_t tids[MAX_THREADS];
static volatile int ntids = 1;
static volatile long counters[MAX_THREADS]; /* main + workers */
static __thread long tl_counter;
static volatile int simd_corrupt;
static enum simd_kind simd;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

static int register_tid(void)
{
	pthread_mutex_lock(&reg_lock);
	int i = ntids++;
	tids[i] = (pid_t)syscall(SYS_gettid);
	pthread_mutex_unlock(&reg_lock);
	return i;
}

static void block_all_signals(void)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static const struct timespec one_ms = {0, 1000 * 1000};

static void *worker(void *arg)
{
	int slot = (int)(intptr_t)arg; /* index into counters */
	block_all_signals();
	tids[slot] = (pid_t)syscall(SYS_gettid);
	if (opt.simd && simd != SIMD_NONE) {
		static unsigned char patterns[MAX_THREADS][SIMD_PATTERN_BYTES] __attribute__((aligned(64)));
		simd_fill(patterns[slot], slot);
		struct simd_ctx ctx = {
			.counter = &tl_counter,
			.publish = &counters[slot],
			.pattern = patterns[slot],
			.corrupt = &simd_corrupt,
			.nap = &one_ms,
			.selftest = (opt.simd_selftest && slot == 1) ? 100 : 0,
		};
		simd_loop(simd, &ctx);
	}
	for (;;) {
		tl_counter++;
		counters[slot] = tl_counter;
		nanosleep(&one_ms, NULL);
	}
	return NULL;
}

/* ---- sleepers --------------------------------------------------------- */

static volatile long sleeper_wakeups, sleeper_early;
static volatile pid_t sleeper_tid, condwait_tid;
static pthread_mutex_t cond_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond_go = PTHREAD_COND_INITIALIZER, cond_ack = PTHREAD_COND_INITIALIZER;
static long cond_gen, cond_seen;

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* nanosleeper counts returns from a 60 s sleep; early ones are a bug. */
static void *nanosleeper(void *arg)
{
	(void)arg;
	block_all_signals();
	sleeper_tid = tids[register_tid()];
	for (;;) {
		struct timespec ts = {60, 0};
		double t0 = mono_now();
		int r = nanosleep(&ts, NULL);
		sleeper_wakeups++;
		if (r != 0 || mono_now() - t0 < 59.9)
			sleeper_early++;
	}
	return NULL;
}

/* condwaiter sleeps in pthread_cond_wait until the main thread bumps
 * cond_gen (once per report), then acknowledges. */
static void *condwaiter(void *arg)
{
	(void)arg;
	block_all_signals();
	condwait_tid = tids[register_tid()];
	pthread_mutex_lock(&cond_lock);
	for (;;) {
		while (cond_seen == cond_gen)
			pthread_cond_wait(&cond_go, &cond_lock);
		cond_seen = cond_gen;
		pthread_cond_signal(&cond_ack);
	}
	return NULL;
}

/* cond_roundtrip wakes condwaiter and waits up to 2 s for its answer. */
static int cond_roundtrip(void)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 2;
	pthread_mutex_lock(&cond_lock);
	long want = ++cond_gen;
	pthread_cond_signal(&cond_go);
	int r = 0;
	while (cond_seen != want && r == 0)
		r = pthread_cond_timedwait(&cond_ack, &cond_lock, &dl);
	int ok = cond_seen == want;
	pthread_mutex_unlock(&cond_lock);
	return ok;
}

/* ---- memory ----------------------------------------------------------- */

static unsigned char *mem;
static size_t mem_len, mem_random_len;
static uint64_t mem_sum0;
#define PAGE 4096
#define ZERO_EVERY 8 /* every 8th page of the random part is written as zero */

/* checksum: FNV-1a over 64-bit words (n is a multiple of 8). */
static uint64_t checksum(const unsigned char *p, size_t n)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n / 8; i++)
		h = (h ^ w[i]) * 1099511628211ULL;
	return h;
}

/* mem_setup: the first 7/8 is random data with every 8th page zero-filled
 * (written, so it is present), the last 1/8 is never touched. */
static void mem_setup(void)
{
	mem_len = (size_t)opt.mem_mib << 20;
	mem = mmap(NULL, mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap %ld MiB", opt.mem_mib);
	mem_random_len = mem_len / 8 * 7 / PAGE * PAGE;
	/* Fault the random part in bulk, much faster than page by page; the
	 * last 1/8 stays untouched. Old kernels lack it: then it faults. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
	madvise(mem, mem_random_len, MADV_POPULATE_WRITE);
	uint64_t x = 0x2545f4914f6cdd1dULL;
	uint64_t *w = (uint64_t *)mem;
	for (size_t i = 0; i < mem_random_len / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
	for (size_t off = 0; off < mem_random_len; off += ZERO_EVERY * PAGE)
		memset(mem + off, 0, PAGE);
	mem_sum0 = checksum(mem, mem_random_len);
}

static int mem_zero_ok(void)
{
	for (size_t off = 0; off < mem_random_len; off += ZERO_EVERY * PAGE)
		for (size_t i = 0; i < PAGE; i++)
			if (mem[off + i])
				return 0;
	return 1;
}

/* ---- files ------------------------------------------------------------ */

static int fd_append = -1, fd_rdonly = -1, fd_opath = -1, fd_deleted = -1;
static char dir_of_file[4096];
#define DELETED_LEN 8192

static unsigned char deleted_byte(size_t i) { return (unsigned char)(i * 7 + 3); }

static void write_file(const char *path, size_t len, unsigned char (*byte)(size_t))
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("create %s", path);
	for (size_t i = 0; i < len; i++) {
		unsigned char b = byte(i);
		if (write(fd, &b, 1) != 1)
			die("write %s", path);
	}
	close(fd);
}

static unsigned char ro_byte(size_t i) { return (unsigned char)('a' + i % 26); }

static void files_setup(void)
{
	char p[4200];
	fd_append = open(opt.file, O_RDWR | O_APPEND | O_CREAT, 0644);
	if (fd_append < 0 || write(fd_append, "start\n", 6) != 6)
		die("open %s", opt.file);
	snprintf(p, sizeof p, "%s.ro", opt.file);
	write_file(p, 4096, ro_byte);
	fd_rdonly = open(p, O_RDONLY | O_CLOEXEC);
	if (fd_rdonly < 0 || lseek(fd_rdonly, RDONLY_OFFSET, SEEK_SET) != RDONLY_OFFSET)
		die("open %s", p);
	snprintf(dir_of_file, sizeof dir_of_file, "%s", opt.file);
	char *slash = strrchr(dir_of_file, '/');
	if (slash)
		*slash = 0;
	else
		strcpy(dir_of_file, ".");
	fd_opath = open(dir_of_file, O_PATH | O_DIRECTORY);
	if (fd_opath < 0)
		die("open O_PATH %s", dir_of_file);
	snprintf(p, sizeof p, "%s.deleted", opt.file);
	write_file(p, DELETED_LEN, deleted_byte);
	fd_deleted = open(p, O_RDONLY);
	if (fd_deleted < 0 || unlink(p) < 0)
		die("open+unlink %s", p);
}

static int deleted_ok(void)
{
	unsigned char buf[DELETED_LEN];
	if (pread(fd_deleted, buf, sizeof buf, 0) != DELETED_LEN)
		return 0;
	for (size_t i = 0; i < DELETED_LEN; i++)
		if (buf[i] != deleted_byte(i))
			return 0;
	struct stat st;
	return fstat(fd_deleted, &st) == 0 && st.st_nlink == 0;
}

/* opath_ok: the O_PATH fd still is O_PATH and still names the directory. */
static int opath_ok(void)
{
	char link[64], target[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd_opath);
	ssize_t n = readlink(link, target, sizeof target - 1);
	if (n < 0)
		return 0;
	target[n] = 0;
	char want[4096];
	if (!realpath(dir_of_file, want))
		return 0;
	return (fcntl(fd_opath, F_GETFL) & O_PATH) && !strcmp(target, want);
}

/* ---- signals and timers ----------------------------------------------- */

static volatile sig_atomic_t usr1_flag;
static volatile long n_usr1, n_alrm, n_rt;
static volatile int usr1_on_altstack = -1; /* -1: never ran with --signals */
static stack_t altstack;
static timer_t posix_timer;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	n_usr1++;
	usr1_flag = 1;
	if (opt.signals) {
		char here;
		uintptr_t a = (uintptr_t)&here, lo = (uintptr_t)altstack.ss_sp;
		usr1_on_altstack = a >= lo && a < lo + altstack.ss_size;
	}
}

static void on_alrm(int sig) { (void)sig, n_alrm++; }
static void on_rt(int sig) { (void)sig, n_rt++; }

static void handle(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa = {0};
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) < 0)
		die("sigaction %d", sig);
}

static const int usr1_flags_plain = SA_SIGINFO | SA_RESTART;
static const int usr1_flags_signals = SA_SIGINFO | SA_RESTART | SA_ONSTACK;

static void signals_setup(void)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = opt.signals ? usr1_flags_signals : usr1_flags_plain;
	sigemptyset(&sa.sa_mask);
	if (opt.signals)
		sigaddset(&sa.sa_mask, SIGWINCH);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		die("sigaction SIGUSR1");
	if (!opt.signals)
		return;
	altstack.ss_size = 64 * 1024;
	altstack.ss_sp = mmap(NULL, altstack.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (altstack.ss_sp == MAP_FAILED || sigaltstack(&altstack, NULL) < 0)
		die("sigaltstack");
	handle(SIGPIPE, SIG_IGN, 0);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
}

/* queue_usr2 leaves one SIGUSR2 pending on the process with value 42; called
 * once every thread blocks it, so it stays pending. */
static void queue_usr2(void)
{
	union sigval v = {.sival_int = 42};
	if (sigqueue(getpid(), SIGUSR2, v) < 0)
		die("sigqueue");
}

static void timers_setup(void)
{
	handle(SIGALRM, on_alrm, SA_RESTART);
	handle(SIGRTMIN, on_rt, SA_RESTART);
	struct itimerval it = {{0, TIMER_NS / 1000}, {0, TIMER_NS / 1000}};
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		die("setitimer");
	struct sigevent ev = {0};
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN;
	if (timer_create(CLOCK_MONOTONIC, &ev, &posix_timer) < 0)
		die("timer_create");
	struct itimerspec ts = {{0, TIMER_NS}, {0, TIMER_NS}};
	if (timer_settime(posix_timer, 0, &ts, NULL) < 0)
		die("timer_settime");
}

/* ---- rseq ------------------------------------------------------------- */

/* rseq_state: "ok" when the kernel keeps this thread's rseq cpu_id right on
 * every CPU the thread may run on (it is moved to each in turn), "stale"
 * when it does not, "unregistered" when glibc did not register rseq. */
static const char *rseq_state(void)
{
	if (__rseq_size == 0)
		return "unregistered";
	volatile struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	cpu_set_t orig, one;
	if (sched_getaffinity(0, sizeof orig, &orig) < 0)
		return "stale";
	const char *res = "ok";
	int tried = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE && tried < 8; cpu++) {
		if (!CPU_ISSET(cpu, &orig))
			continue;
		tried++;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof one, &one) < 0)
			continue;
		unsigned kcpu = ~0u;
		syscall(SYS_getcpu, &kcpu, NULL, NULL);
		if (rs->cpu_id != kcpu || kcpu != (unsigned)cpu)
			res = "stale";
	}
	sched_setaffinity(0, sizeof orig, &orig);
	return res;
}

/* ---- report ----------------------------------------------------------- */

static long seq;
static char out[1 << 16];
static size_t outlen;

static void put(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out + outlen, sizeof out - outlen, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof out - outlen)
		outlen += n;
}

static const char *jbool(int b) { return b ? "true" : "false"; }

static void report_signals(void)
{
	sigset_t cur, pend;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	sigpending(&pend);
	int pending = sigismember(&pend, SIGUSR2);
	/* Take the pending SIGUSR2 to read its value, then queue it again. */
	int value = -1;
	siginfo_t si;
	sigset_t only;
	sigemptyset(&only);
	sigaddset(&only, SIGUSR2);
	struct timespec zero = {0, 0};
	if (sigtimedwait(&only, &si, &zero) == SIGUSR2) {
		value = si.si_code == SI_QUEUE ? si.si_value.sival_int : -2;
		queue_usr2();
	}
	stack_t ss;
	int ss_ok = sigaltstack(NULL, &ss) == 0 && ss.ss_sp == altstack.ss_sp &&
		    ss.ss_size == altstack.ss_size && !(ss.ss_flags & SS_DISABLE);
	struct sigaction sa;
	sigaction(SIGUSR1, NULL, &sa);
	struct sigaction pipe_sa;
	sigaction(SIGPIPE, NULL, &pipe_sa);
	int sa_ok = sa.sa_sigaction == on_usr1 &&
		    (sa.sa_flags & (SA_SIGINFO | SA_RESTART | SA_ONSTACK)) == usr1_flags_signals &&
		    sigismember(&sa.sa_mask, SIGWINCH) && pipe_sa.sa_handler == SIG_IGN;
	put(",\"sigaltstack_ok\":%s", jbool(ss_ok && usr1_on_altstack == 1));
	put(",\"sigaction_ok\":%s", jbool(sa_ok));
	put(",\"blocked_ok\":%s", jbool(sigismember(&cur, SIGUSR2)));
	put(",\"pending_usr2\":%s", jbool(pending));
	put(",\"usr2_value\":%d", value);
}

static void report_timers(void)
{
	struct itimerval it;
	getitimer(ITIMER_REAL, &it);
	struct itimerspec ts;
	int pt_ok = timer_gettime(posix_timer, &ts) == 0 && ts.it_interval.tv_sec == 0 &&
		    ts.it_interval.tv_nsec == TIMER_NS;
	put(",\"sigalrm\":%ld,\"sigrt\":%ld", n_alrm, n_rt);
	put(",\"itimer_interval_us\":%ld", (long)(it.it_interval.tv_sec * 1000000 + it.it_interval.tv_usec));
	put(",\"posix_timer_ok\":%s", jbool(pt_ok));
}

static void report_files(void)
{
	struct stat st;
	fstat(fd_append, &st);
	put(",\"offsets\":{\"rdonly\":%ld,\"append\":%ld}", (long)lseek(fd_rdonly, 0, SEEK_CUR),
	    (long)lseek(fd_append, 0, SEEK_CUR));
	put(",\"flags\":{\"append\":%d,\"rdonly\":%d,\"rdonly_cloexec\":%d}", fcntl(fd_append, F_GETFL),
	    fcntl(fd_rdonly, F_GETFL), fcntl(fd_rdonly, F_GETFD));
	put(",\"append_size\":%ld", (long)st.st_size);
	put(",\"deleted_content_ok\":%s,\"opath_ok\":%s", jbool(deleted_ok()), jbool(opath_ok()));
}

static void write_report(void)
{
	seq++;
	if (opt.file) {
		/* One line per report through the O_APPEND fd: the file must grow. */
		char line[64];
		int n = snprintf(line, sizeof line, "report %ld\n", seq);
		if (write(fd_append, line, n) != n)
			die("append");
	}
	outlen = 0;
	char comm[17] = {0}, cwd[4096] = "";
	prctl(PR_GET_NAME, comm);
	if (!getcwd(cwd, sizeof cwd))
		cwd[0] = 0;
	mode_t um = umask(0);
	umask(um);
	put("{\"seq\":%ld,\"pid\":%d,\"ppid\":%d,\"comm\":\"%s\",\"umask\":%d,\"cwd\":\"%s\"", seq, getpid(),
	    getppid(), comm, (int)um, cwd);
	put(",\"tids\":[");
	for (int i = 0; i < ntids; i++)
		put("%s%d", i ? "," : "", tids[i]);
	put("],\"counters\":[");
	for (int i = 0; i <= opt.threads; i++)
		put("%s%ld", i ? "," : "", counters[i]);
	put("],\"sigusr1\":%ld,\"rseq\":\"%s\"", n_usr1, rseq_state());
	if (opt.simd)
		put(",\"simd\":\"%s\",\"simd_ok\":%s", simd_name(simd), jbool(!simd_corrupt));
	if (opt.mem_mib) {
		uint64_t sum = checksum(mem, mem_random_len);
		put(",\"mem_checksum\":\"%016llx\",\"mem_ok\":%s,\"zero_ok\":%s", (unsigned long long)sum,
		    jbool(sum == mem_sum0), jbool(mem_zero_ok()));
	}
	if (opt.file)
		report_files();
	if (opt.sleeper)
		put(",\"sleeper_tids\":[%d,%d],\"sleeper_wakeups\":%ld,\"sleeper_early\":%ld,\"cond_ok\":%s",
		    sleeper_tid, condwait_tid, sleeper_wakeups, sleeper_early, jbool(cond_roundtrip()));
	if (opt.timers)
		report_timers();
	if (opt.signals)
		report_signals();
	put("}\n");

	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", opt.report);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, out, outlen) != (ssize_t)outlen || close(fd) < 0)
		die("write %s", tmp);
	if (rename(tmp, opt.report) < 0)
		die("rename %s", tmp);
}

/* ---- main ------------------------------------------------------------- */

int main(int argc, char **argv)
{
	parse(argc, argv);
	tids[0] = getpid();
	prctl(PR_SET_NAME, COMM);
	umask(UMASK);
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", opt.report);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = 0;
		if (chdir(dir[0] ? dir : "/") < 0)
			die("chdir %s", dir);
	}
	simd = simd_detect();
	if (opt.simd_avx && simd == SIMD_AVX512)
		simd = SIMD_AVX;
	signals_setup();
	if (opt.mem_mib)
		mem_setup();
	if (opt.file)
		files_setup();
	if (opt.timers)
		timers_setup();

	/* Threads start with every signal blocked: only the main thread takes
	 * signals, and a SIMD worker never runs a handler. */
	sigset_t all, saved;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	pthread_t th;
	ntids = 1 + opt.threads;
	for (int i = 1; i <= opt.threads; i++)
		if (pthread_create(&th, NULL, worker, (void *)(intptr_t)i))
			die("pthread_create");
	if (opt.sleeper) {
		if (pthread_create(&th, NULL, nanosleeper, NULL) || pthread_create(&th, NULL, condwaiter, NULL))
			die("pthread_create");
	}
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	/* Wait until every thread has published its tid. */
	for (int i = 0; i < 5000; i++) {
		int all = (!opt.sleeper || (sleeper_tid && condwait_tid));
		for (int j = 1; j <= opt.threads; j++)
			all = all && tids[j] != 0;
		if (all)
			break;
		nanosleep(&one_ms, NULL);
	}
	if (opt.signals)
		queue_usr2();

	write_report();
	for (;;) {
		if (usr1_flag) {
			usr1_flag = 0;
			write_report();
		}
		tl_counter++;
		counters[0] = tl_counter;
		nanosleep(&one_ms, NULL);
	}
}

/*
 * dirtier.c: a victim for godwit's migration benchmark. It holds --mib MiB
 * of anonymous memory, fills it with non-zero data and then, forever, in a
 * loop paced at one iteration per millisecond (CLOCK_MONOTONIC, absolute
 * deadlines):
 *
 *   - measures the gap between the starts of two consecutive iterations:
 *     normally the period; when the process is frozen (by a checkpoint, a
 *     migration, page faults served from afar) the gap is the pause the
 *     program itself sees;
 *   - rewrites --rate percent of its pages per second, spread evenly: each
 *     iteration rewrites the pages owed for the time since the previous one
 *     (at most 10 ms worth, so a long pause is not caught up in one burst),
 *     picked at random;
 *   - checks pages against what it wrote: a sweep of npages/2000 pages (at
 *     least 16) per iteration, so that all of them are checked about every
 *     2 s, plus 4 pages picked at random.
 *
 * Page i holds the words v[i] ^ (j << 1), j = 0..511, where v[i] is odd
 * (so no word is zero) and changes at every rewrite; v is a separate array.
 * A page lost (zero), stale (an older version) or misplaced does not match.
 * "vsum", the xor of v, is a checksum of the memory's state.
 *
 * Every 100 ms, and at once after SIGUSR1, it writes one JSON object padded
 * with spaces to a fixed size, with pwrite at offset 0, to --report PATH,
 * which it keeps open: a regular file survives a migration to another PID
 * namespace of the same machine. The object starts and ends with the same
 * sequence number ("seq" and "seq_end"): a reader that sees them differ
 * (or cannot parse the object) read it while it was written and reads
 * again. "state" is "filling", then "ready", and "CORRUPT" for good once a
 * page did not match.
 *
 * SIGUSR1 resets the gap figures (max_gap_ns, stalled_ns, gaps_over_10ms)
 * and counts the reset in "resets", so that a reader can measure the
 * pauses of one interval.
 *
 * stdin, stdout and stderr must be /dev/null or regular files for a dump
 * to work; it writes only to stderr, and only when setup fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)
#define PERIOD_NS 1000000ull      /* one iteration per millisecond */
#define REPORT_NS 100000000ull    /* a report every 100 ms */
#define MAX_OWED_NS 10000000ull   /* at most 10 ms of writes owed */
#define STALL_NS (2 * PERIOD_NS)  /* a gap longer than this is a stall */
#define REPORT_SIZE 1024          /* bytes of every report, padding included */

static volatile sig_atomic_t reset_asked;

static void on_usr1(int sig) { (void)sig; reset_asked = 1; }

static void die(const char *what)
{
	fprintf(stderr, "dirtier: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* never 0 from non-0 */
	return *s = x;
}

static uint64_t *mem, *v;
static size_t npages;

static void fill_page(size_t i)
{
	uint64_t *p = mem + i * WORDS, x = v[i];
	for (size_t j = 0; j < WORDS; j++)
		p[j] = x ^ ((uint64_t)j << 1);
}

/* What the reader sees: counters since the start or the last reset. */
static struct {
	uint64_t seq, iters, max_gap_ns, max_gap_at_ns, stalled_ns, over_10ms;
	uint64_t sweeps, checked, writes, resets, corrupt, vsum;
	long bad_page;
	uint64_t bad_word, want_word;
	const char *state;
} st = {.state = "filling", .bad_page = -1};

/* check compares page i with v[i]; it records the first mismatch. */
static void check_page(size_t i)
{
	const uint64_t *p = mem + i * WORDS, x = v[i];
	st.checked++;
	for (size_t j = 0; j < WORDS; j++) {
		uint64_t want = x ^ ((uint64_t)j << 1);
		if (p[j] != want) {
			if (st.corrupt++ == 0) {
				st.bad_page = (long)i;
				st.bad_word = p[j];
				st.want_word = want;
			}
			st.state = "CORRUPT";
			return;
		}
	}
}

static unsigned long pid_ns(void)
{
	struct stat s;
	if (stat("/proc/self/ns/pid", &s) != 0)
		return 0;
	return (unsigned long)s.st_ino;
}

static void report(int fd)
{
	char buf[REPORT_SIZE];
	st.seq++;
	int n = snprintf(buf, sizeof buf,
		"{\"seq\":%lu,\"state\":\"%s\",\"pid\":%d,\"pid_ns\":%lu,\"now_ns\":%lu,"
		"\"addr\":%lu,\"len\":%lu,\"iters\":%lu,\"max_gap_ns\":%lu,\"max_gap_at_ns\":%lu,"
		"\"stalled_ns\":%lu,\"gaps_over_10ms\":%lu,\"resets\":%lu,\"sweeps\":%lu,"
		"\"checked\":%lu,\"writes\":%lu,\"corrupt\":%lu,\"bad_page\":%ld,"
		"\"bad_word\":%lu,\"want_word\":%lu,\"vsum\":%lu,\"seq_end\":%lu}",
		(unsigned long)st.seq, st.state, (int)getpid(), pid_ns(), (unsigned long)now_ns(),
		(unsigned long)(uintptr_t)mem, (unsigned long)(npages * PAGE), (unsigned long)st.iters,
		(unsigned long)st.max_gap_ns, (unsigned long)st.max_gap_at_ns,
		(unsigned long)st.stalled_ns, (unsigned long)st.over_10ms, (unsigned long)st.resets,
		(unsigned long)st.sweeps, (unsigned long)st.checked, (unsigned long)st.writes,
		(unsigned long)st.corrupt, st.bad_page, (unsigned long)st.bad_word,
		(unsigned long)st.want_word, (unsigned long)st.vsum, (unsigned long)st.seq);
	if (n < 0 || n >= REPORT_SIZE - 1) {
		errno = EOVERFLOW;
		die("format report");
	}
	memset(buf + n, ' ', REPORT_SIZE - 1 - n);
	buf[REPORT_SIZE - 1] = '\n';
	if (pwrite(fd, buf, REPORT_SIZE, 0) != REPORT_SIZE)
		die("write report");
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	long mib = 1024;
	double rate = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--mib") == 0)
			mib = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--rate") == 0)
			rate = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--report") == 0)
			path = argv[i + 1];
	}
	if (!path || mib <= 0 || rate < 0 || rate > 100) {
		fprintf(stderr, "usage: dirtier --mib N --rate PERCENT_PER_S --report PATH\n");
		return 2;
	}
	npages = ((size_t)mib << 20) / PAGE;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("open report");
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	v = malloc(npages * sizeof *v);
	if (!v)
		die("malloc");
	report(fd);

	uint64_t vals = 0x9e3779b97f4a7c15ull, picks = 0x2545f4914f6cdd1dull;
	for (size_t i = 0; i < npages; i++) {
		v[i] = xorshift(&vals) | 1;
		st.vsum ^= v[i];
		fill_page(i);
	}

	struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		die("sigaction");

	/* pages per nanosecond, and per sweep step */
	const double per_ns = rate / 100 * (double)npages / 1e9;
	size_t sweep = npages / 2000, cursor = 0;
	if (sweep < 16)
		sweep = 16;
	if (sweep > npages)
		sweep = npages;
	double owed = 0;

	st.state = "ready";
	uint64_t prev = now_ns(), next = prev, last_report = prev;
	report(fd);
	for (;;) {
		next += PERIOD_NS;
		uint64_t t = now_ns();
		if (next + 100 * PERIOD_NS < t)
			next = t; /* far behind: start a new schedule */
		struct timespec dl = {.tv_sec = next / 1000000000ull, .tv_nsec = next % 1000000000ull};
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL) == EINTR)
			;
		t = now_ns();
		uint64_t gap = t - prev;
		prev = t;
		st.iters++;
		if (reset_asked) {
			reset_asked = 0;
			st.max_gap_ns = st.max_gap_at_ns = st.stalled_ns = st.over_10ms = 0;
			st.resets++;
			report(fd);
			last_report = t;
			continue; /* this gap started before the reset */
		}
		if (gap > st.max_gap_ns) {
			st.max_gap_ns = gap;
			st.max_gap_at_ns = t;
		}
		if (gap > STALL_NS)
			st.stalled_ns += gap - PERIOD_NS;
		if (gap > 10 * PERIOD_NS)
			st.over_10ms++;

		owed += per_ns * (double)(gap < MAX_OWED_NS ? gap : MAX_OWED_NS);
		for (; owed >= 1; owed--) {
			size_t i = xorshift(&picks) % npages;
			st.vsum ^= v[i];
			v[i] = xorshift(&vals) | 1;
			st.vsum ^= v[i];
			fill_page(i);
			st.writes++;
		}

		for (size_t k = 0; k < sweep; k++) {
			check_page(cursor);
			if (++cursor == npages) {
				cursor = 0;
				st.sweeps++;
			}
		}
		for (int k = 0; k < 4; k++)
			check_page(xorshift(&picks) % npages);

		if (t - last_report >= REPORT_NS) {
			report(fd);
			last_report = t;
		}
	}
}

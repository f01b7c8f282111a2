/* clonens: what clone(2) costs for each namespace toybox asks for.
 *
 *   clonens ROUNDS
 *
 * For each flag alone, then all of toybox's together, then none: clone a
 * child that exits at once, ROUNDS times, interleaved flag by flag, and
 * print "name median_us" for the clone call itself (where the kernel makes
 * the namespaces: copy_namespaces, copy_net_ns...). The child is reaped
 * before the next clone. Run as root.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int child(void *arg)
{
	(void)arg;
	return 0;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int compare(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static char stack[1 << 16];
	static const struct { const char *name; int flags; } kinds[] = {
		{ "none", 0 },
		{ "mount", CLONE_NEWNS },
		{ "uts", CLONE_NEWUTS },
		{ "ipc", CLONE_NEWIPC },
		{ "pid", CLONE_NEWPID },
		{ "net", CLONE_NEWNET },
		{ "cgroup", CLONE_NEWCGROUP },
		{ "user", CLONE_NEWUSER },
		{ "toybox's six", CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP },
	};
	enum { KINDS = sizeof kinds / sizeof *kinds };
	int rounds = argc > 1 ? atoi(argv[1]) : 30;
	long long *times = calloc((size_t)rounds * KINDS, sizeof *times);
	if (rounds < 1 || !times)
		return 2;
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < KINDS; k++) {
			long long start = now_ns();
			pid_t pid = clone(child, stack + sizeof stack, kinds[k].flags | SIGCHLD, NULL);
			long long took = now_ns() - start;
			if (pid < 0) {
				perror(kinds[k].name);
				return 1;
			}
			waitpid(pid, NULL, 0);
			times[k * rounds + r] = took;
		}
	}
	for (int k = 0; k < KINDS; k++) {
		qsort(times + k * rounds, rounds, sizeof *times, compare);
		printf("%s\t%lld\n", kinds[k].name, times[k * rounds + rounds / 2] / 1000);
	}
	return 0;
}

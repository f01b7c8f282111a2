/* timer: run commands and report, per run, wall time, CPU time and peak RSS.
 *
 *   timer rounds N FILE     FILE: one command per line, "name<TAB>argv0<TAB>argv1...".
 *                           Round by round, every command once (in a new
 *                           random order each round), so drift on a noisy
 *                           machine hits every command alike.
 *   timer after N FILE NAME  The same, but every other command runs right
 *                           after one run of NAME (untimed, unreported): a
 *                           script or CI job that starts containers with
 *                           another runtime in between.
 *   timer idle N FILE MS    The same, but every command starts after MS ms
 *                           with nothing running: a user who starts a
 *                           container now and then. Kernel work that stays
 *                           warm in a tight loop (an RCU grace period before
 *                           a global lock, say) is paid again each time.
 *   timer burst N NAME ARGV...   N copies at once; each one's stdout is kept.
 *
 * Output, one line per run: name wall_ns user_us sys_us maxrss_kib status [stdout]
 * wall is spawn to reap; user/sys/maxrss come from wait4(2), so they cover
 * the runtime and every descendant it waited for.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct command {
	char *name;
	char *argv[32];
};

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static pid_t start(struct command *c, int out_fd)
{
	posix_spawn_file_actions_t actions;
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
	else
		posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
	if (!getenv("TIMER_STDERR"))
		posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	if (posix_spawn(&pid, c->argv[0], &actions, NULL, c->argv, environ) != 0) {
		fprintf(stderr, "timer: cannot run %s\n", c->argv[0]);
		exit(2);
	}
	posix_spawn_file_actions_destroy(&actions);
	return pid;
}

static void report(struct command *c, long long wall, struct rusage *ru, int status, const char *output)
{
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	printf("%s %lld %ld %ld %ld %d%s%s\n", c->name, wall,
	       ru->ru_utime.tv_sec * 1000000L + ru->ru_utime.tv_usec,
	       ru->ru_stime.tv_sec * 1000000L + ru->ru_stime.tv_usec, ru->ru_maxrss, code,
	       output ? " " : "", output ? output : "");
}

static long long run_once(struct command *c, struct rusage *ru, int *status)
{
	long long t0 = now_ns();
	pid_t pid = start(c, -1);
	wait4(pid, status, 0, ru);
	return now_ns() - t0;
}

static int rounds(int n, const char *file, const char *before, int idle_ms)
{
	static struct command commands[64];
	static char line[4096 * 4];
	int count = 0;
	FILE *f = fopen(file, "r");
	if (!f)
		return 2;
	while (count < 64 && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		if (!*line)
			continue;
		struct command *c = &commands[count++];
		int argc = 0;
		c->name = strdup(strtok(line, "\t"));
		for (char *arg; argc < 31 && (arg = strtok(NULL, "\t"));)
			c->argv[argc++] = strdup(arg);
		c->argv[argc] = NULL;
	}
	fclose(f);
	struct command *first = NULL;
	for (int k = 0; before && k < count; k++)
		if (!strcmp(commands[k].name, before))
			first = &commands[k];
	if (before && !first) {
		fprintf(stderr, "timer: no command named %s in %s\n", before, file);
		return 2;
	}
	/* A fresh order every round (a fixed seed, so runs repeat): with a
	 * rotation each command would always follow the same neighbour, and
	 * what one leaves behind (runc's cgroup removals, pending RCU work)
	 * would always land on the same next one. */
	int order[64];
	for (int k = 0; k < count; k++)
		order[k] = k;
	srand(1);
	for (int r = 0; r < n; r++) {
		for (int k = count - 1; k > 0; k--) {
			int j = rand() % (k + 1), t = order[k];
			order[k] = order[j];
			order[j] = t;
		}
		for (int k = 0; k < count; k++) {
			struct command *c = &commands[order[k]];
			struct rusage ru;
			int status;
			if (c == first)
				continue;
			if (first)
				run_once(first, &ru, &status);
			if (idle_ms)
				usleep(idle_ms * 1000);
			long long wall = run_once(c, &ru, &status);
			report(c, wall, &ru, status, NULL);
		}
		fflush(stdout);
	}
	return 0;
}

static int burst(int n, char **argv)
{
	struct command c = { .name = argv[0] };
	int argc = 0;
	for (char **a = argv + 1; *a && argc < 31; a++)
		c.argv[argc++] = *a;
	c.argv[argc] = NULL;
	pid_t *pids = calloc(n, sizeof *pids);
	int *fds = calloc(n, sizeof *fds);
	long long t0 = now_ns();
	for (int i = 0; i < n; i++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC))
			return 2;
		pids[i] = start(&c, p[1]);
		close(p[1]);
		fds[i] = p[0];
	}
	for (int done = 0; done < n; done++) {
		struct rusage ru;
		int status;
		pid_t pid = wait4(-1, &status, 0, &ru);
		long long wall = now_ns() - t0;
		for (int i = 0; i < n; i++) {
			if (pids[i] != pid)
				continue;
			char out[256] = "";
			ssize_t len = read(fds[i], out, sizeof out - 1);
			out[len > 0 ? len : 0] = 0;
			out[strcspn(out, "\n")] = 0;
			report(&c, wall, &ru, status, *out ? out : "-");
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "rounds"))
		return rounds(atoi(argv[2]), argv[3], NULL, 0);
	if (argc == 5 && !strcmp(argv[1], "after"))
		return rounds(atoi(argv[2]), argv[3], argv[4], 0);
	if (argc == 5 && !strcmp(argv[1], "idle"))
		return rounds(atoi(argv[2]), argv[3], NULL, atoi(argv[4]));
	if (argc >= 5 && !strcmp(argv[1], "burst"))
		return burst(atoi(argv[2]), argv + 3);
	fprintf(stderr, "usage: timer rounds N FILE | timer after N FILE NAME | timer idle N FILE MS | "
			"timer burst N NAME ARGV...\n");
	return 2;
}

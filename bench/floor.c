/* floor: the kernel work toybox asks for, and nothing else.
 *
 *   floor ROOTFS PROGRAM
 *
 * The same cgroups (v1: memory, cpu, pids, blkio; v2: one group), the same
 * six namespaces from clone, pivot_root into the rootfs, a user namespace
 * with the 0 10000 2000 uid/gid map written by the parent after a socketpair
 * handshake, execve. No command line parsing, no checks, no printing, no
 * capabilities or seccomp: the benchmark's floor, what the kernel costs.
 * Errors exit 125 without a word; the benchmark checks the status.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char *rootfs, *program;
static int sock[2];

static void put(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		write(fd, value, strlen(value));
		close(fd);
	}
}

static int child(void *arg)
{
	char byte = 0;
	(void)arg;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) ||
	    chdir(rootfs) || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) || chdir("/"))
		return 125;
	if (unshare(CLONE_NEWUSER) || write(sock[1], &byte, 1) != 1 || read(sock[1], &byte, 1) != 1)
		return 125;
	gid_t gid = 0;
	if (setgroups(1, &gid) || setresgid(0, 0, 0) || setresuid(0, 0, 0))
		return 125;
	char *argv[] = { program, NULL }, *envp[] = { NULL };
	execve(program, argv, envp);
	return 127;
}

/* v1: one group per controller; v2: one group in the unified tree. */
static const char *controllers[] = { "memory", "cpu", "pids", "blkio" };
static const char *settings[][2] = {
	{ "memory.limit_in_bytes", "1073741824" }, { "cpu.shares", "256" }, { "pids.max", "64" }, { "blkio.weight", "50" }
};
static const char *v2_settings[][2] = { { "memory.max", "1073741824" }, { "pids.max", "64" }, { "cpu.weight", "25" } };

static void hierarchy(char *out, size_t size, int v2, int i)
{
	if (v2)
		snprintf(out, size, "/sys/fs/cgroup");
	else
		snprintf(out, size, "/sys/fs/cgroup/%s", controllers[i]);
}

int main(int argc, char **argv)
{
	static char stack[1 << 16];
	char group[64], root[256], path[512];
	int v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0, groups = v2 ? 1 : 4, status;
	if (argc != 3)
		return 125;
	rootfs = argv[1];
	program = argv[2];
	snprintf(group, sizeof group, "floor-%d", getpid());
	for (int i = 0; i < groups; i++) {
		hierarchy(root, sizeof root, v2, i);
		snprintf(path, sizeof path, "%s/%s", root, group);
		mkdir(path, 0755);
		for (int j = 0; j < (v2 ? 3 : 1); j++) {
			const char **setting = v2 ? v2_settings[j] : settings[i];
			snprintf(path, sizeof path, "%s/%s/%s", root, group, setting[0]);
			put(path, setting[1]);
		}
		snprintf(path, sizeof path, "%s/%s/cgroup.procs", root, group);
		put(path, "0");
	}
	struct rlimit64 { unsigned long cur, max; } nofile = { 64, 64 };
	syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &nofile, NULL);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock))
		return 125;
	pid_t pid = clone(child, stack + sizeof stack,
			  CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | SIGCHLD,
			  NULL);
	if (pid < 0)
		return 125;
	char byte;
	if (read(sock[0], &byte, 1) == 1) {
		snprintf(path, sizeof path, "/proc/%d/uid_map", pid), put(path, "0 10000 2000\n");
		snprintf(path, sizeof path, "/proc/%d/gid_map", pid), put(path, "0 10000 2000\n");
		write(sock[0], &byte, 1);
	}
	waitpid(pid, &status, 0);
	for (int i = 0; i < groups; i++) {
		hierarchy(root, sizeof root, v2, i);
		snprintf(path, sizeof path, "%s/cgroup.procs", root);
		put(path, "0");
		snprintf(path, sizeof path, "%s/%s", root, group);
		rmdir(path);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

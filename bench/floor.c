/* floor: the kernel work toybox asks for, and nothing else.
 *
 *   floor ROOTFS PROGRAM [mounts]
 *
 * The same cgroups (v1: memory, cpu, pids, blkio; v2: one group), the same
 * six namespaces from clone, pivot_root into the rootfs, a user namespace
 * with the 0 10000 2000 uid/gid map written by the parent after a socketpair
 * handshake, execve. No command line parsing, no checks, no printing, no
 * capabilities or seccomp: the benchmark's floor, what the kernel costs.
 * With "mounts" it also mounts what toybox's chapters 10 and 11 add: /dev
 * (tmpfs, six nodes, devpts, shm, links) and /proc with runc's masks and a
 * read-only /sys, so the table can tell their kernel cost from toybox's own.
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
#include <sys/sysmacros.h>
#include <sys/resource.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char *rootfs, *program;
static int sock[2], with_mounts;

static const char *masked[] = { "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware" };
static const char *read_only[] = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" };

static int dev_and_proc(void)
{
	static const struct { const char *name; int major, minor; } nodes[] = {
		{ "/dev/null", 1, 3 }, { "/dev/zero", 1, 5 }, { "/dev/full", 1, 7 },
		{ "/dev/random", 1, 8 }, { "/dev/urandom", 1, 9 }, { "/dev/tty", 5, 0 },
	};
	static const char *links[][2] = { { "pts/ptmx", "/dev/ptmx" }, { "/proc/self/fd", "/dev/fd" },
					  { "/proc/self/fd/0", "/dev/stdin" }, { "/proc/self/fd/1", "/dev/stdout" },
					  { "/proc/self/fd/2", "/dev/stderr" } };
	struct stat st;
	if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k"))
		return -1;
	for (unsigned i = 0; i < sizeof nodes / sizeof *nodes; i++)
		if (mknod(nodes[i].name, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) || chmod(nodes[i].name, 0666))
			return -1;
	if (mkdir("/dev/pts", 0755) || mkdir("/dev/shm", 01777) || chmod("/dev/shm", 01777) ||
	    mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") ||
	    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=64m"))
		return -1;
	for (unsigned i = 0; i < sizeof links / sizeof *links; i++)
		if (symlink(links[i][0], links[i][1]))
			return -1;
	unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (mount("proc", "/proc", "proc", flags, NULL) || mount("sysfs", "/sys", "sysfs", flags | MS_RDONLY, NULL))
		return -1;
	for (unsigned i = 0; i < sizeof masked / sizeof *masked; i++) {
		if (stat(masked[i], &st))
			continue;
		if (S_ISDIR(st.st_mode) ? mount("tmpfs", masked[i], "tmpfs", MS_RDONLY, "size=0")
					: mount("/dev/null", masked[i], NULL, MS_BIND, NULL))
			return -1;
	}
	for (unsigned i = 0; i < sizeof read_only / sizeof *read_only; i++) {
		if (stat(read_only[i], &st))
			continue;
		if (mount(read_only[i], read_only[i], NULL, MS_BIND | MS_REC, NULL) ||
		    mount(NULL, read_only[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | flags, NULL))
			return -1;
	}
	return 0;
}

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
	if (with_mounts && dev_and_proc())
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
	if (argc != 3 && argc != 4)
		return 125;
	with_mounts = argc == 4 && !strcmp(argv[3], "mounts");
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
		/* v1: "0" to tasks moves this one thread and skips the global
		 * lock a cgroup.procs write takes (as toybox does). */
		snprintf(path, sizeof path, "%s/%s/%s", root, group, v2 ? "cgroup.procs" : "tasks");
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
		snprintf(path, sizeof path, "%s/%s", root, v2 ? "cgroup.procs" : "tasks");
		put(path, "0");
		snprintf(path, sizeof path, "%s/%s", root, group);
		rmdir(path);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* probe: the tests' eyes inside a container.
 *
 * Built static (the rootfs has no libc of the host's) and copied into the
 * test rootfs as /probe. Each mode prints plain `key value` lines that the
 * tests in tests/container.rs compare with what they expect; the probe itself
 * decides nothing. The container has no /proc, so everything is asked of the
 * kernel directly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <dirent.h>
#include <termios.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case 0: return "OK";
	case EPERM: return "EPERM";
	case ENOSYS: return "ENOSYS";
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case EFAULT: return "EFAULT";
	case ENOTTY: return "ENOTTY";
	case ESRCH: return "ESRCH";
	case EAGAIN: return "EAGAIN";
	case EEXIST: return "EEXIST";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case EDQUOT: return "EDQUOT";
	case ENOKEY: return "ENOKEY";
	default: return strerror(e);
	}
}

/* Print `name RESULT` for a raw syscall's return value. */
static void report(const char *name, long rc)
{
	printf("%s %s\n", name, rc < 0 ? errname(errno) : "OK");
}

static void *thread_main(void *arg) { return arg; }

/* A child that calls `fn` and exits with its errno (0 on success). */
static int in_child_errno(long (*fn)(void))
{
	int status;
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn() < 0 ? errno : 0);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	if (WIFSIGNALED(status))
		return 1000 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static long clone_newuser(void)
{
	long rc = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
	if (rc == 0)
		_exit(0);
	if (rc > 0)
		waitpid(rc, NULL, 0);
	return rc;
}

static long clone_plain(void)
{
	long rc = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (rc == 0)
		_exit(0);
	if (rc > 0)
		waitpid(rc, NULL, 0);
	return rc;
}

static long clone3_plain(void)
{
	uint64_t args[11] = {0};
	args[4] = SIGCHLD; /* exit_signal */
	long rc = syscall(435, args, sizeof(args));
	if (rc == 0)
		_exit(0);
	if (rc > 0)
		waitpid(rc, NULL, 0);
	return rc;
}

static long unshare_newuser(void) { return unshare(CLONE_NEWUSER); }

/* i386 getpid through int 0x80: another ABI, another syscall table. */
static long int80_getpid(void)
{
	long rc;
	__asm__ volatile("int $0x80" : "=a"(rc) : "a"(20) : "memory");
	return rc;
}

/* x32 getpid: the x86_64 number with __X32_SYSCALL_BIT set. */
static long x32_getpid(void) { return syscall(0x40000000 | SYS_getpid); }

static void *int80_thread(void *arg)
{
	int80_getpid();
	return arg;
}

/* int 0x80 from a second thread. A filter that kills only the thread lets
 * the process go on and exit 0; one that kills the process ends it here. */
static long int80_in_thread(void)
{
	pthread_t thread;
	if (pthread_create(&thread, NULL, int80_thread, NULL) != 0)
		return -1;
	pthread_join(thread, NULL);
	return 0;
}

static void print_errno_of(const char *name, int e)
{
	if (e >= 1000)
		printf("%s SIG%s\n", name, e - 1000 == SIGSYS ? "SYS" : "OTHER");
	else
		printf("%s %s\n", name, errname(e));
}

/* Every call the seccomp filter must refuse, then ordinary calls that must
 * keep working. Arguments are chosen so that, without the filter, the call
 * would not fail with EPERM: a test seeing EPERM sees the filter. */
static int mode_syscalls(void)
{
	const char *f = "/tmp/probe-syscalls";
	unlink(f);
	int fd = open(f, O_CREAT | O_WRONLY, 0644);
	report("open_plain", fd);
	report("write", fd < 0 ? -1 : write(fd, "x", 1));

	report("chmod_suid", chmod(f, 04755));
	report("chmod_sgid", chmod(f, 02755));
	report("fchmod_suid", fchmod(fd, 04755));
	report("fchmod_sgid", fchmod(fd, 02755));
	report("fchmodat_suid", syscall(SYS_fchmodat, AT_FDCWD, f, 04755));
	report("fchmodat_sgid", syscall(SYS_fchmodat, AT_FDCWD, f, 02755));
	report("fchmodat2_suid", syscall(452, AT_FDCWD, f, 04755, 0));
	report("chmod_plain", chmod(f, 0755));
	report("fchmod_plain", fchmod(fd, 0700));
	if (fd >= 0)
		close(fd);
	unlink(f);

	report("open_creat_suid", syscall(SYS_open, f, O_CREAT | O_WRONLY, 04755));
	report("openat_creat_sgid", syscall(SYS_openat, AT_FDCWD, f, O_CREAT | O_WRONLY, 02755));
	report("creat_suid", syscall(SYS_creat, f, 04755));
	report("openat_tmpfile_sgid", syscall(SYS_openat, AT_FDCWD, "/tmp", O_TMPFILE | O_WRONLY, 02755));
	/* A mode without O_CREAT or O_TMPFILE makes nothing: O_DIRECTORY, half of
	 * O_TMPFILE's value, must not be mistaken for it. */
	int dir = syscall(SYS_openat, AT_FDCWD, "/tmp", O_RDONLY | O_DIRECTORY, 06755);
	report("openat_directory_setid_mode", dir);
	if (dir >= 0)
		close(dir);
	unlink(f);
	report("mknod_suid", syscall(SYS_mknod, f, S_IFREG | 04755, 0));
	report("mknodat_sgid", syscall(SYS_mknodat, AT_FDCWD, f, S_IFREG | 02755, 0));
	struct { uint64_t flags, mode, resolve; } how = { O_CREAT | O_WRONLY, 04755, 0 };
	report("openat2", syscall(437, AT_FDCWD, f, &how, sizeof(how)));
	unlink(f);

	print_errno_of("unshare_newuser", in_child_errno(unshare_newuser));
	print_errno_of("clone_newuser", in_child_errno(clone_newuser));
	print_errno_of("clone3", in_child_errno(clone3_plain));
	print_errno_of("clone_plain", in_child_errno(clone_plain));

	int pipes[2];
	if (pipe(pipes) < 0)
		return 1;
	char c = 'x';
	int queued = 0;
	report("ioctl_tiocsti", ioctl(pipes[0], TIOCSTI, &c));
	/* TIOCSTI with garbage in the upper 32 bits: the kernel uses the low 32. */
	report("ioctl_tiocsti_high", syscall(SYS_ioctl, pipes[0], 0x100000000UL | TIOCSTI, &c));
	report("ioctl_fionread", ioctl(pipes[0], FIONREAD, &queued));
	struct winsize ws;
	report("ioctl_tiocgwinsz", ioctl(pipes[0], TIOCGWINSZ, &ws));

	report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -1, 0));
	report("add_key", syscall(SYS_add_key, NULL, NULL, NULL, 0, 0));
	report("request_key", syscall(SYS_request_key, NULL, NULL, NULL, 0));
	report("ptrace", syscall(SYS_ptrace, 2 /* PTRACE_PEEKDATA */, 99999, 0, 0));
	report("mbind", syscall(SYS_mbind, 0, 0, 0, 0, 0, 0));
	report("migrate_pages", syscall(SYS_migrate_pages, 0, 0, NULL, NULL));
	report("move_pages", syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0));
	report("set_mempolicy", syscall(SYS_set_mempolicy, 0, NULL, 0));
	report("userfaultfd", syscall(SYS_userfaultfd, 1 /* UFFD_USER_MODE_ONLY */));
	report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	report("io_uring_setup", syscall(425, 1, NULL));
	report("io_uring_enter", syscall(426, -1, 0, 0, 0, NULL, 0));
	report("io_uring_register", syscall(427, -1, 0, NULL, 0));

	print_errno_of("int80", in_child_errno(int80_getpid));
	print_errno_of("x32", in_child_errno(x32_getpid));
	print_errno_of("int80_in_thread", in_child_errno(int80_in_thread));
	/* -1 is no system call: ENOSYS, and not taken for another ABI's. */
	report("syscall_minus_one", syscall(-1));

	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	report("fork", pid < 0 ? -1 : waitpid(pid, NULL, 0));
	pthread_t thread;
	int err = pthread_create(&thread, NULL, thread_main, NULL);
	if (!err)
		pthread_join(thread, NULL);
	printf("pthread %s\n", errname(err));
	return 0;
}

static int mode_caps(void)
{
	struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &header, data) < 0) {
		perror("capget");
		return 1;
	}
	uint64_t bounding = 0, ambient = 0;
	for (int cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			bounding |= 1ULL << cap;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
			ambient |= 1ULL << cap;
	}
	printf("bounding %016llx\n", (unsigned long long)bounding);
	printf("effective %016llx\n", (unsigned long long)(data[0].effective | (uint64_t)data[1].effective << 32));
	printf("permitted %016llx\n", (unsigned long long)(data[0].permitted | (uint64_t)data[1].permitted << 32));
	printf("inheritable %016llx\n", (unsigned long long)(data[0].inheritable | (uint64_t)data[1].inheritable << 32));
	printf("ambient %016llx\n", (unsigned long long)ambient);
	return 0;
}

static int mode_identity(void)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	struct utsname uts;
	struct rlimit nofile;
	getresuid(&ruid, &euid, &suid);
	getresgid(&rgid, &egid, &sgid);
	uname(&uts);
	getrlimit(RLIMIT_NOFILE, &nofile);
	printf("pid %d\n", getpid());
	printf("uid %d %d %d\n", ruid, euid, suid);
	printf("gid %d %d %d\n", rgid, egid, sgid);
	printf("hostname %s\n", uts.nodename);
	printf("no_new_privs %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	printf("seccomp %d\n", prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
	printf("nofile %llu %llu\n", (unsigned long long)nofile.rlim_cur, (unsigned long long)nofile.rlim_max);
	struct if_nameindex *ifs = if_nameindex();
	for (struct if_nameindex *i = ifs; i && i->if_name; i++)
		printf("netdev %s\n", i->if_name);
	return 0;
}

/* `ls DIR`: the names in DIR, one a line. */
static int mode_ls(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		printf("error %s\n", errname(errno));
		return 1;
	}
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			printf("entry %s\n", e->d_name);
	closedir(d);
	return 0;
}

static void stat_report(const char *label, const char *path)
{
	struct stat st;
	printf("%s %s %s\n", label, path, stat(path, &st) == 0 ? "exists" : errname(errno));
}

/* The classic chroot escape: chroot into a subdirectory while keeping the
 * working directory outside it, then walk up. Against a plain chroot this
 * reaches the host's /; after pivot_root and unmounting the old root there
 * is nothing above the container's / to reach. */
static int mode_escape(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		stat_report("before", argv[i]);
	mkdir("/tmp/probe-escape", 0700);
	if (chroot("/tmp/probe-escape") < 0)
		printf("chroot %s\n", errname(errno));
	for (int i = 0; i < 64; i++)
		if (chdir("..") < 0)
			break;
	if (chroot(".") < 0)
		printf("chroot-dot %s\n", errname(errno));
	for (int i = 0; i < argc; i++)
		stat_report("after", argv[i]);
	rmdir("/tmp/probe-escape"); /* still the container's /tmp: nothing escaped */
	return 0;
}

/* `fds`: every descriptor open in this process, asked of each number with
 * fcntl (no /proc needed). An inherited one can sit far above the rlimit. */
static int mode_fds(void)
{
	printf("fds");
	for (int fd = 0; fd < 65536; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			printf(" %d", fd);
	printf("\n");
	return 0;
}

/* `ping ADDR`: one ICMP echo over an unprivileged datagram socket, the
 * kind ping_group_range allows (icmp(7)); a raw socket needs CAP_NET_RAW
 * over the network namespace, which the container's root does not have. */
static int mode_ping(const char *addr)
{
	int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	if (fd < 0) {
		printf("ping %s\n", errname(errno));
		return 1;
	}
	struct sockaddr_in to = { .sin_family = AF_INET };
	inet_pton(AF_INET, addr, &to.sin_addr);
	struct icmphdr request = { .type = ICMP_ECHO };
	request.un.echo.sequence = htons(1);
	struct timeval timeout = { .tv_sec = 2 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
	char reply[64];
	ssize_t n = -1;
	if (sendto(fd, &request, sizeof request, 0, (struct sockaddr *)&to, sizeof to) == sizeof request)
		n = recv(fd, reply, sizeof reply, 0);
	if (n < 0)
		printf("ping %s\n", errname(errno));
	else
		printf("ping %s\n", ((struct icmphdr *)reply)->type == ICMP_ECHOREPLY ? "OK" : "not a reply");
	return 0;
}

/* Touch memory 64 MiB at a time, reporting the total, until killed. */
static int mode_hog(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	const size_t step = 64UL << 20;
	for (size_t total = step;; total += step) {
		char *p = mmap(NULL, step, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			printf("mmap %s\n", errname(errno));
			return 1;
		}
		memset(p, 1, step);
		printf("hog %zu\n", total >> 20);
		if (total >= (8UL << 30))
			return 0;
	}
}

/* Fork children that wait until fork fails, then report how many it made. */
static int mode_forkbomb(void)
{
	int made = 0, err = 0;
	for (; made < 10000; made++) {
		pid_t pid = fork();
		if (pid == 0) {
			pause();
			_exit(0);
		}
		if (pid < 0) {
			err = errno;
			break;
		}
	}
	printf("forked %d %s\n", made, errname(err));
	fflush(stdout);
	kill(-1, SIGKILL); /* as PID 1: every other process in the namespace */
	while (wait(NULL) > 0)
		;
	return 0;
}

/* What podman's default seccomp profile decides, call by call: add_key is
 * in no allow rule (its defaultErrnoRet, ENOSYS), perf_event_open needs
 * CAP_SYS_ADMIN (EPERM), personality(0xffffffff) only asks (allowed by an
 * argument compare), and without CAP_AUDIT_WRITE an audit netlink socket
 * is refused with EINVAL (two compares). Without a filter: EFAULT, EFAULT,
 * OK, OK. */
static int mode_profile(void)
{
	report("add_key", syscall(SYS_add_key, NULL, NULL, NULL, 0, 0));
	report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	report("personality", syscall(SYS_personality, 0xffffffffUL));
	report("netlink_audit", socket(AF_NETLINK, SOCK_RAW, 9 /* NETLINK_AUDIT */));
	return 0;
}

static void exit_with_signal_status(int sig) { _exit(128 + sig); }

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "syscalls"))
		return mode_syscalls();
	if (!strcmp(mode, "caps"))
		return mode_caps();
	if (!strcmp(mode, "profile"))
		return mode_profile();
	if (!strcmp(mode, "identity"))
		return mode_identity();
	if (!strcmp(mode, "ls") && argc > 2)
		return mode_ls(argv[2]);
	if (!strcmp(mode, "escape"))
		return mode_escape(argc - 2, argv + 2);
	if (!strcmp(mode, "ping") && argc > 2)
		return mode_ping(argv[2]);
	if (!strcmp(mode, "fds"))
		return mode_fds();
	if (!strcmp(mode, "hog"))
		return mode_hog();
	if (!strcmp(mode, "forkbomb"))
		return mode_forkbomb();
	if (!strcmp(mode, "wait-stdin")) {
		char buf[256];
		printf("ready\n");
		while (read(0, buf, sizeof(buf)) > 0)
			;
		return 0;
	}
	if (!strcmp(mode, "trap")) {
		/* PID 1 only gets signals it handles: exit 128+N like a shell would. */
		signal(SIGINT, exit_with_signal_status);
		signal(SIGTERM, exit_with_signal_status);
		signal(SIGHUP, exit_with_signal_status);
		printf("ready\n");
		for (;;)
			pause();
	}
	if (!strcmp(mode, "sleep")) {
		printf("ready\n");
		for (;;)
			pause();
	}
	if (!strcmp(mode, "tty")) {
		pid_t owner = tcgetpgrp(0);
		/* In toybox's own group, the group's id is outside this PID namespace: 0. */
		printf("pgrp %d\n", getpgrp());
		printf("foreground %d\n", owner >= 0 && owner == getpgrp());
		return 0;
	}
	if (!strcmp(mode, "segv")) {
		*(volatile int *)0 = 1;
		return 0;
	}
	if (!strcmp(mode, "exit") && argc > 2)
		return atoi(argv[2]);
	fprintf(stderr, "usage: probe syscalls|caps|identity|ls DIR|escape PATH...|fds|ping ADDR|hog|forkbomb|"
			"wait-stdin|trap|sleep|segv|exit N\n");
	return 2;
}

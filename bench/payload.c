/* The benchmark's container command: static, tiny, does nothing, so that what
 * is measured is the runtime. With an argument it prints its hostname, so a
 * burst of containers can be checked for distinct names. */
#include <stdio.h>
#include <sys/utsname.h>

int main(int argc, char **argv)
{
	struct utsname uts;
	(void)argv;
	if (argc > 1 && uname(&uts) == 0)
		printf("%s\n", uts.nodename);
	return 0;
}

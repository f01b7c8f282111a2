/* forkfill: fork children that wait in pause() until fork fails, then print
 * how many there were, e.g. "62 (fork: Resource temporarily unavailable)".
 *
 *   forkfill [MAX]        (default 256)
 *
 * Under pids.max = 64 fork starts failing with EAGAIN before 64 children.
 * MAX stops it on a host without the limit. The children are killed and
 * reaped before it exits 0. Built with gcc -static by run.sh. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int max = argc > 1 ? atoi(argv[1]) : 256;
    pid_t *children = calloc((size_t)max, sizeof *children);
    const char *why = "reached MAX";
    int count = 0;
    if (children == NULL)
        return 1;
    while (count < max) {
        pid_t pid = fork();
        if (pid < 0) {
            why = strerror(errno);
            break;
        }
        if (pid == 0) {
            pause();
            _exit(0);
        }
        children[count++] = pid;
    }
    printf("%d (fork: %s)\n", count, why);
    fflush(stdout);
    for (int i = 0; i < count; i++)
        kill(children[i], SIGKILL);
    while (wait(NULL) > 0)
        ;
    return 0;
}

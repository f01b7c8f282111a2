/* memhog: hold more and more memory in one process until the kernel says no.
 *
 *   memhog [MAX_MIB]      (default 1536)
 *
 * Allocates 64 MiB at a time and writes to every byte, so each step is
 * really charged to the memory cgroup (untouched malloc'd pages cost
 * nothing). After each step it prints the running total in MiB on its own
 * line, unbuffered, so the last line says how far it got before an OOM kill.
 * MAX_MIB caps it below the VM's RAM: without a cgroup limit it then exits 0
 * instead of waking the global OOM killer. Built with gcc -static by run.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STEP_MIB 64

int main(int argc, char **argv)
{
    long max_mib = argc > 1 ? atol(argv[1]) : 1536;
    for (long total = STEP_MIB; total <= max_mib; total += STEP_MIB) {
        char *chunk = malloc((size_t)STEP_MIB << 20);
        if (chunk == NULL) {
            fprintf(stderr, "memhog: malloc failed after %ld MiB\n", total - STEP_MIB);
            return 1;
        }
        memset(chunk, 0xa5, (size_t)STEP_MIB << 20);
        char line[32];
        int n = snprintf(line, sizeof line, "%ld\n", total);
        if (write(STDOUT_FILENO, line, (size_t)n) != n)
            return 1;
    }
    return 0;
}

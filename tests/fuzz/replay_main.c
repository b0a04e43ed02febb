/*
 * replay_main.c — runs LLVMFuzzerTestOneInput over every file of a corpus
 * directory, for builds without libFuzzer (gcc, the ordinary test run).
 *
 * The target aborts on a finding, so a file either passes or ends the run;
 * "failed" counts files that could not be read. Files are replayed in name
 * order so that a run is reproducible.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read a whole regular file; *len gets its size. Returns NULL on failure. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 4096;
            uint8_t *nbuf = realloc(buf, ncap);
            if (!nbuf)
                goto fail;
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f))
        goto fail;
    fclose(f);
    *len = n;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    struct dirent **names = NULL;
    int count = scandir(argv[1], &names, NULL, alphasort);
    if (count < 0) {
        fprintf(stderr, "%s: cannot read %s: %s\n", argv[0], argv[1], strerror(errno));
        return 1;
    }
    unsigned passed = 0, failed = 0;
    for (int k = 0; k < count; k++) {
        char path[4096];
        struct stat sb;
        int len = snprintf(path, sizeof path, "%s/%s", argv[1], names[k]->d_name);
        free(names[k]);
        if (len < 0 || (size_t)len >= sizeof path) {
            failed++;
            continue;
        }
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        size_t size = 0;
        uint8_t *data = read_file(path, &size);
        if (!data) {
            fprintf(stderr, "%s: cannot read %s\n", argv[0], path);
            failed++;
            continue;
        }
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        passed++;
    }
    free(names);
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}

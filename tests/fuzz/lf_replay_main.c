/*
 * Replay driver for the libFuzzer targets (tests/fuzz/lf_*.c) in builds
 * without libFuzzer (build/ with gcc, build-asan/): each argument is a file
 * or a directory of files (not recursive), and each file is passed once to
 * LLVMFuzzerTestOneInput, in a buffer of exactly its size so that ASan sees
 * any over-read.  A target reports a broken invariant by aborting; this
 * driver exits 0 after the last input, 1 when an argument cannot be read or
 * holds no input at all (an empty corpus would make the test pass vacuously).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long len;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "genie: lf replay: cannot read %s: %s\n", path, strerror(errno));
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "genie: lf replay: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long n = 0;

    for (int a = 1; a < argc; a++) {
        struct stat sb;
        struct dirent **names;
        int k;

        if (stat(argv[a], &sb) != 0) {
            fprintf(stderr, "genie: lf replay: %s: %s\n", argv[a], strerror(errno));
            return 1;
        }
        if (!S_ISDIR(sb.st_mode)) {
            if (replay_file(argv[a]) != 0) {
                return 1;
            }
            n++;
            continue;
        }
        k = scandir(argv[a], &names, NULL, alphasort);
        if (k < 0) {
            fprintf(stderr, "genie: lf replay: %s: %s\n", argv[a], strerror(errno));
            return 1;
        }
        for (int i = 0; i < k; i++) {
            char path[4096];
            int rc = 0;

            snprintf(path, sizeof(path), "%s/%s", argv[a], names[i]->d_name);
            if (names[i]->d_name[0] != '.' && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                rc = replay_file(path);
                n++;
            }
            free(names[i]);
            if (rc != 0) {
                for (int j = i + 1; j < k; j++) {
                    free(names[j]);
                }
                free(names);
                return 1;
            }
        }
        free(names);
    }
    if (n == 0) {
        fprintf(stderr, "genie: lf replay: no inputs in %s\n", argc > 1 ? argv[1] : "(no arguments)");
        return 1;
    }
    printf("lf replay: %lu inputs, no failure\n", n);
    return 0;
}

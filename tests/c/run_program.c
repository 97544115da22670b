/* A C program linked against libkernelpool through include/kernelpool.h. */
#include "kernelpool.h"

#include <stdio.h>
#include <string.h>

int main(void) {
    unsigned char out[64];
    size_t written = 0;
    if (kp_run_program("spectralnorm", "fortran", 100, out, sizeof out, &written) != KP_OK) {
        return 1;
    }
    fwrite(out, 1, written, stdout);
    if (kp_run_program("spectralnorm", "cobol", 100, out, sizeof out, &written) != KP_INVALID_ARGUMENT) {
        return 2;
    }
    char msg[256];
    size_t len = 0;
    if (kp_last_error_message(msg, sizeof msg, &len) != KP_OK || strstr(msg, "cobol") == NULL) {
        return 3;
    }
    if (kp_run_program(NULL, "c", 0, out, sizeof out, &written) != KP_NULL_ARGUMENT) {
        return 4;
    }
    printf("version %s\n", kp_version());
    return 0;
}

/* The dynamic program of the VS Code tests (built with gcc at test time):
 * prints what printenv/main.go prints, through glibc, so remocal's
 * LD_PRELOAD bootstrap library is what puts it in the target's context. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  printf("args=");
  for (int i = 1; i < argc; i++) printf(i > 1 ? " %s" : "%s", argv[i]);
  printf("\n");
  const char *tok = getenv("API_TOKEN");
  printf("API_TOKEN=%s\n", tok ? tok : "<unset>");
  FILE *f = fopen("/etc/inventory/config.json", "r");
  if (!f) {
    printf("CONFIG=<error: %s>\n", strerror(errno));
    return 0;
  }
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  printf("CONFIG=%s\n", buf);
  return 0;
}

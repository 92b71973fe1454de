/* test_log.c: the CRI log writer: F for full lines, P for partial pieces and
 * 16 KiB cuts, one record per line, and reopen after rotation. */
#include "harness.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static char *slurp(const char *path)
{
  struct shim_err err;
  char *out = NULL;
  if (read_file(path, &out, NULL, 1 << 24, &err) < 0)
    return strdup("");
  return out;
}

/* Split into lines; returns count. */
static size_t lines(char *text, char **out, size_t max)
{
  size_t n = 0;
  for (char *save, *l = strtok_r(text, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save))
    out[n++] = l;
  return n;
}

int main(void)
{
  char dir[] = "/tmp/skiff-test-log-XXXXXX", path[256], rotated[300];
  struct shim_err err;
  struct cri_log *log;
  char *text, *ls[16];
  size_t n;
  regex_t re;

  if (!mkdtemp(dir))
    return 1;
  snprintf(path, sizeof(path), "%s/c.log", dir);
  regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z (stdout|stderr) [PF] ", REG_EXTENDED);

  check(cri_log_open("relative.log", &log, &err) < 0 && err.code == SHIM_INVALID_ARGUMENT, "a relative log path is refused");
  check(cri_log_open(path, &log, &err) == 0, "open creates the log file");

  cri_log_write(log, STREAM_STDOUT, "one\ntwo\npart", 12);
  cri_log_write(log, STREAM_STDERR, "err line\n", 9);
  text = slurp(path);
  n = lines(text, ls, 16);
  check(n == 3, "full lines are written, the unfinished one is held");
  check(n >= 1 && regexec(&re, ls[0], 0, NULL, 0) == 0 && strstr(ls[0], " stdout F one"), "full line is tagged F with an RFC3339Nano time");
  check(n >= 3 && strstr(ls[2], " stderr F err line"), "stderr lines are tagged stderr");
  free(text);
  cri_log_write(log, STREAM_STDOUT, "ial\ntail", 8);
  text = slurp(path);
  n = lines(text, ls, 16);
  check(n == 4 && strstr(ls[3], " stdout F partial") && !strstr(ls[3], "tail"), "a line split over two reads is one F record");
  free(text);
  cri_log_flush(log, STREAM_STDOUT);
  text = slurp(path);
  n = lines(text, ls, 16);
  check(n == 5 && strstr(ls[4], " stdout P tail"), "at the end of a stream the unfinished line is written as P");
  free(text);

  {
    size_t big = 20 * 1024;
    char *buf = malloc(big + 1);
    memset(buf, 'x', big);
    buf[big] = '\n';
    truncate(path, 0);
    /* In 1000-byte reads, as a pipe delivers them. */
    for (size_t off = 0; off < big + 1; off += 1000)
      cri_log_write(log, STREAM_STDOUT, buf + off, big + 1 - off < 1000 ? big + 1 - off : 1000);
    free(buf);
    text = slurp(path);
    n = lines(text, ls, 16);
    check(n == 2, "a 20 KiB line becomes two records");
    check(n == 2 && strstr(ls[0], " stdout P ") && strlen(strstr(ls[0], " P ") + 3) == 16 * 1024, "the first record is a 16 KiB P cut");
    check(n == 2 && strstr(ls[1], " stdout F ") && strlen(strstr(ls[1], " F ") + 3) == 4 * 1024, "the rest ends the line with F");
    free(text);
  }

  snprintf(rotated, sizeof(rotated), "%s.1", path);
  rename(path, rotated);
  cri_log_write(log, STREAM_STDOUT, "before\n", 7);
  check(cri_log_reopen(log, &err) == 0, "reopen succeeds after rotation");
  cri_log_write(log, STREAM_STDOUT, "after\n", 6);
  text = slurp(path);
  check(strstr(text, "after") && !strstr(text, "before"), "after reopen new output goes to a new file at the path");
  free(text);
  text = slurp(rotated);
  check(strstr(text, "before") && !strstr(text, "after"), "output before reopen stays in the rotated file");
  free(text);

  cri_log_close(log);
  regfree(&re);
  unlink(path);
  unlink(rotated);
  rmdir(dir);
  return tap_done();
}

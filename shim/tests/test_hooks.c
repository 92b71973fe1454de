/* test_hooks.c: config.json's hooks parsed into typed lists (and bad ones refused,
 * naming the field), the state a hook gets, and the runner: the state on stdin, a
 * failing hook's exit status and stderr in the error, a hook past its timeout killed. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool parses_bad(const char *text, const char *want)
{
  struct shim_err err = { 0 };
  struct spec_hooks h;
  cleanup_json json_t *doc = test_json(text);
  int rc = hooks_parse(doc, &h, &err);
  hooks_free(&h);
  return rc < 0 && err.code == SHIM_INVALID_ARGUMENT && strstr(err.msg, want);
}

int main(void)
{
  char dir[] = "/tmp/skiff-test-hooks-XXXXXX", out_path[256], script[2048];
  struct shim_err err = { 0 };
  struct spec_hooks h;
  cleanup_json json_t *doc = NULL;
  char *state, *text = NULL;

  if (!mkdtemp(dir))
    return tap_bail("mkdtemp: %s", strerror(errno));
  snprintf(out_path, sizeof(out_path), "%s/state.json", dir);

  doc = test_json("{\"ociVersion\": \"1.1.0\", \"annotations\": {\"a\": \"b\"}, \"hooks\": {"
                  "\"prestart\": [{\"path\": \"/bin/true\"}],"
                  "\"createRuntime\": [{\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"exit 0\"], \"env\": [\"A=1\"], \"timeout\": 5},"
                  "                    {\"path\": \"/bin/true\"}],"
                  "\"poststop\": [{\"path\": \"/bin/true\", \"timeout\": null}],"
                  "\"somethingElse\": 1}}");
  if (check_rc(hooks_parse(doc, &h, &err), &err, "a hooks object parses")) {
    check(h.n[HOOK_PRESTART] == 1 && h.n[HOOK_CREATE_RUNTIME] == 2 && h.n[HOOK_CREATE_CONTAINER] == 0 && h.n[HOOK_POSTSTOP] == 1,
          "each kind holds its hooks, in order");
    check(strcmp(h.list[HOOK_CREATE_RUNTIME][0].path, "/bin/sh") == 0 && strcmp(h.list[HOOK_CREATE_RUNTIME][0].args[2], "exit 0") == 0
              && h.list[HOOK_CREATE_RUNTIME][0].args[3] == NULL && strcmp(h.list[HOOK_CREATE_RUNTIME][0].env[0], "A=1") == 0
              && h.list[HOOK_CREATE_RUNTIME][0].timeout_s == 5,
          "path, args, env and timeout are kept");
    check(h.list[HOOK_CREATE_RUNTIME][1].args == NULL && h.list[HOOK_CREATE_RUNTIME][1].env == NULL
              && h.list[HOOK_CREATE_RUNTIME][1].timeout_s == 0,
          "absent args, env and timeout read as none");
    check(hooks_budget_ms(&h, HOOK_CREATE_RUNTIME) == (5 + HOOK_DEFAULT_TIMEOUT_S) * 1000,
          "the budget of a kind adds each hook's timeout (the default for one without)");
    check(hooks_any(&h, HOOK_POSTSTOP) && !hooks_any(&h, HOOK_START_CONTAINER) && !hooks_any(NULL, HOOK_POSTSTOP),
          "hooks_any tells which kinds have hooks");
    hooks_free(&h);
  }
  {
    cleanup_json json_t *none = test_json("{\"ociVersion\": \"1.1.0\"}");
    check(hooks_parse(none, &h, &err) == 0 && !hooks_any(&h, HOOK_PRESTART) && h.list[HOOK_POSTSTOP] == NULL,
          "no hooks object: no hooks");
    hooks_free(&h);
  }
  check(parses_bad("{\"hooks\": {\"poststart\": [{\"path\": \"bin/x\"}]}}", "hooks.poststart[0].path: must be an absolute path"),
        "a relative path is refused, naming the hook");
  check(parses_bad("{\"hooks\": {\"createContainer\": [{}]}}", "hooks.createContainer[0].path"), "a hook needs a path");
  check(parses_bad("{\"hooks\": {\"startContainer\": [{\"path\": \"/x\", \"timeout\": 0}]}}", "timeout: 0 must be greater than zero"),
        "a timeout of 0 is refused");
  check(parses_bad("{\"hooks\": {\"poststop\": [{\"path\": \"/x\", \"args\": [\"x\", 1]}]}}", "args[1]: must be a string"),
        "a non-string argument is refused");
  check(parses_bad("{\"hooks\": {\"prestart\": {\"path\": \"/x\"}}}", "hooks.prestart: must be an array"), "a kind must be a list");
  check(parses_bad("{\"hooks\": [1]}", "config.hooks: must be an object"), "hooks must be an object");

  state = hooks_state(doc, "c1", "creating", 42, "/run/b");
  {
    json_error_t jerr;
    cleanup_json json_t *s = state ? json_loads(state, 0, &jerr) : NULL;
    check(s && strcmp(json_string_value(json_object_get(s, "ociVersion")), "1.1.0") == 0
              && strcmp(json_string_value(json_object_get(s, "id")), "c1") == 0
              && strcmp(json_string_value(json_object_get(s, "status")), "creating") == 0
              && json_integer_value(json_object_get(s, "pid")) == 42
              && strcmp(json_string_value(json_object_get(s, "bundle")), "/run/b") == 0
              && strcmp(json_string_value(json_object_get(json_object_get(s, "annotations"), "a")), "b") == 0,
          "the state holds ociVersion, id, status, pid, bundle and annotations (%s)", state ? state : "NULL");
  }
  {
    cleanup_free char *stopped = hooks_state(doc, "c1", "stopped", 0, "/run/b");
    check(stopped && !strstr(stopped, "\"pid\""), "a stopped container's state has no pid (%s)", stopped ? stopped : "NULL");
  }

  /* The runner, with /bin/sh hooks. */
  snprintf(script, sizeof(script),
           "{\"hooks\": {\"createRuntime\": [{\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"cat > %s; echo \\\"$A\\\" >> %s\"], \"env\": [\"A=from-env\"]}],"
           "\"createContainer\": [{\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"echo out; echo the hook broke >&2; exit 3\"]}],"
           "\"startContainer\": [{\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"echo slow >&2; exec sleep 30\"], \"timeout\": 1}],"
           "\"poststart\": [{\"path\": \"%s/missing\"}, {\"path\": \"/bin/true\"}],"
           "\"poststop\": [{\"path\": \"/bin/true\"}, {\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"test \\\"$SKIFF_HOOK_TEST\\\" = inherited\"]}]}}",
           out_path, out_path, dir);
  setenv("SKIFF_HOOK_TEST", "inherited", 1);
  {
    cleanup_json json_t *run = test_json(script);
    if (check_rc(hooks_parse(run, &h, &err), &err, "the runner's hooks parse")) {
      if (check_rc(hooks_run(&h, HOOK_CREATE_RUNTIME, state, &err), &err, "a hook that exits 0 succeeds")) {
        size_t len;
        read_file(out_path, &text, &len, 1 << 20, &err);
        check(text && strncmp(text, state, strlen(state)) == 0 && strcmp(text + strlen(state), "from-env\n") == 0,
              "the hook read the state on stdin and had its env (%s)", text ? text : "NULL");
      }
      check(hooks_run(&h, HOOK_CREATE_CONTAINER, state, &err) < 0 && err.code == SHIM_FAILED_PRECONDITION
                && strstr(err.msg, "createContainer hook [0] /bin/sh: exit status 3") && strstr(err.msg, "stderr: the hook broke")
                && strstr(err.msg, "stdout: out"),
            "a failing hook fails with its status, stderr and stdout (%s)", err.msg);
      check(hooks_run(&h, HOOK_START_CONTAINER, state, &err) < 0 && err.code == SHIM_DEADLINE_EXCEEDED
                && strstr(err.msg, "startContainer hook [0] /bin/sh: timed out after 1 s") && strstr(err.msg, "stderr: slow"),
            "a hook past its timeout is killed and fails (%s)", err.msg);
      check(hooks_run(&h, HOOK_POSTSTART, state, &err) < 0 && strstr(err.msg, "poststart hook [0]") && strstr(err.msg, "exit status 127")
                && strstr(err.msg, "exec ") && strstr(err.msg, "No such file"),
            "a hook that cannot be executed fails, saying why (%s)", err.msg);
      check_rc(hooks_run(&h, HOOK_POSTSTOP, state, &err), &err, "every hook of a kind runs, in order; one without env has the runner's");
      check(hooks_run(&h, HOOK_POSTSTOP, NULL, &err) < 0, "no state (no memory) fails");
      hooks_free(&h);
    }
  }
  free(text);
  free(state);
  unlink(out_path);
  rmdir(dir);
  return tap_done();
}

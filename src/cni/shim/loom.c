/*
 * loom: the CNI plugin binary.
 *
 * A runtime starts the plugin once per container operation. A Node.js process spends 80-100 ms
 * just starting, more than the whole attach, so the plugin is this small C program: it forwards
 * the runtime's request (the CNI_* environment and the network configuration on stdin) to the
 * host's Loom agent, where the CNI logic lives (src/cni/handler.ts), prints the agent's answer
 * and exits with the agent's exit code. It knows nothing of CNI beyond:
 *   - VERSION is answered here, so runtimes can probe the plugin while the agent is down;
 *   - "agentSocket" and "cniVersion" are read from the configuration to find the agent and to
 *     label its own errors;
 *   - when the agent cannot be reached it prints a CNI error object (code 11, try again later).
 * Every failure, here or on the way, ends with a CNI error object on stdout and exit status 1
 * (SIGPIPE is ignored, so an agent that closes early is an error, not a silent death).
 *
 * Size limit: the request to the agent (the JSON below, after escaping the configuration) is at
 * most MAX_REQUEST bytes, the same limit the agent enforces (MAX_CNI_REQUEST_BYTES in
 * src/cni/spec.ts; a test compares them). A larger configuration is refused here with code 7,
 * a permanent error: retrying cannot make it fit.
 *
 * Wire format (the agent's local API, src/agent/local-api.ts):
 *   POST /v1/cni  {"env": {"CNI_COMMAND": ..., ...every CNI_* variable}, "stdin": "<config>"}
 *   200, header Loom-Cni-Exit: <exit code>, body: exactly what the plugin prints on stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef LOOM_VERSION
#define LOOM_VERSION "dev"
#endif

/* Must match SUPPORTED_VERSIONS in src/cni/spec.ts (a test compares them). */
#define CNI_VERSION "1.0.0"
#define SUPPORTED_VERSIONS "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"
#define DEFAULT_AGENT_SOCKET "/run/loom/agent.sock"
/* Must match MAX_CNI_REQUEST_BYTES in src/cni/spec.ts (a test compares them). */
#define MAX_REQUEST (1024 * 1024)
#define MAX_REPLY (4 * 1024 * 1024)
#define TIMEOUT_SECONDS 120

extern char **environ;

/* A growable byte buffer; allocation failure ends the process (nothing sensible is left to do). */
struct buf {
  char *data;
  size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    static const char oom[] = "{\"cniVersion\":\"" CNI_VERSION "\",\"code\":5,\"msg\":\"loom: out of memory\"}\n";
    if (write(1, oom, sizeof oom - 1) < 0) _exit(1);
    _exit(1);
  }
  b->data = p;
  b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n) {
  buf_reserve(b, n);
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* Appends s as a JSON string literal. */
static void buf_json(struct buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_add(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      buf_add(b, e, 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      buf_add(b, e, 6);
    } else {
      buf_add(b, (const char *)&c, 1);
    }
  }
  buf_add(b, "\"", 1);
}

/* ------------------------------------------------------------------ reading the configuration */

/*
 * Just enough JSON to find a top-level string member of an object. Returns 1 and the decoded
 * value in out (NUL-terminated, truncated to outlen-1) when found, 0 when absent, -1 when the
 * text is not a JSON object. Nested values are only skipped; the agent parses the whole text.
 */
static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* Parses a string at p (at its opening quote); decodes into out if out != NULL. */
static const char *parse_string(const char *p, const char *end, char *out, size_t outlen) {
  size_t o = 0;
  if (p >= end || *p != '"') return NULL;
  for (p++; p < end; p++) {
    char c = *p;
    if (c == '"') {
      if (out) out[o < outlen ? o : outlen - 1] = '\0';
      return p + 1;
    }
    if (c == '\\') {
      if (++p >= end) return NULL;
      switch (*p) {
        case 'n': c = '\n'; break;
        case 't': c = '\t'; break;
        case 'r': c = '\r'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'u': {
          if (end - p < 5) return NULL;
          unsigned v = 0;
          for (int i = 1; i <= 4; i++) {
            char h = p[i];
            v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 0);
          }
          p += 4;
          /* Non-ASCII escapes do not occur in socket paths or versions; keep a placeholder. */
          c = v < 0x80 ? (char)v : '?';
          break;
        }
        default: c = *p; /* \" \\ \/ */
      }
    }
    if (out && o + 1 < outlen) out[o++] = c;
  }
  return NULL;
}

/* Skips any JSON value at p; returns the position after it or NULL. */
static const char *skip_value(const char *p, const char *end) {
  p = skip_ws(p, end);
  if (p >= end) return NULL;
  if (*p == '"') return parse_string(p, end, NULL, 0);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      if (*p == '"') {
        p = parse_string(p, end, NULL, 0);
        if (!p) return NULL;
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return NULL;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') p++;
  return p;
}

static int json_top_string(const char *text, size_t len, const char *key, char *out, size_t outlen) {
  const char *p = skip_ws(text, text + len), *end = text + len;
  char name[64];
  if (p >= end || *p != '{') return -1;
  p = skip_ws(p + 1, end);
  if (p < end && *p == '}') return 0;
  for (;;) {
    p = parse_string(p, end, name, sizeof name);
    if (!p) return -1;
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return -1;
    p = skip_ws(p + 1, end);
    if (strcmp(name, key) == 0 && p < end && *p == '"') return parse_string(p, end, out, outlen) ? 1 : -1;
    p = skip_value(p, end);
    if (!p) return -1;
    p = skip_ws(p, end);
    if (p < end && *p == '}') return 0;
    if (p >= end || *p != ',') return -1;
    p = skip_ws(p + 1, end);
  }
}

/* ------------------------------------------------------------------ output */

static char cni_version[32] = CNI_VERSION;

/* Prints a CNI error object on stdout and exits 1 (the spec: errors go to stdout). */
static void fail(int code, const char *details, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct buf out = {0};
  buf_str(&out, "{\"cniVersion\":");
  buf_json(&out, cni_version, strlen(cni_version));
  char num[32];
  snprintf(num, sizeof num, ",\"code\":%d,\"msg\":", code);
  buf_str(&out, num);
  buf_json(&out, msg, strlen(msg));
  if (details && *details) {
    buf_str(&out, ",\"details\":");
    buf_json(&out, details, strlen(details));
  }
  buf_str(&out, "}\n");
  fwrite(out.data, 1, out.len, stdout);
  exit(1);
}

/* Writes everything; returns 0, or the errno of a failed write (e.g. EPIPE: the agent closed). */
static int write_all_fd(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    if (w == 0) return EPIPE;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void usage(void) {
  fputs(
      "loom " LOOM_VERSION ": the Loom CNI plugin.\n"
      "\n"
      "Container runtimes run it; it is not meant to be run by hand. It reads CNI_COMMAND\n"
      "(ADD, DEL, CHECK, STATUS, GC, VERSION), CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS\n"
      "from the environment and the network configuration from stdin, and asks the Loom agent\n"
      "on this host to do the work. Configuration keys besides the standard ones:\n"
      "  network      the Loom network to attach to (default: the configuration's name)\n"
      "  agentSocket  the agent's local API socket (default " DEFAULT_AGENT_SOCKET ")\n"
      "CNI_ARGS IP=<ipv4>[,<ipv6>] asks for static addresses.\n",
      stdout);
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    usage();
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    puts("loom " LOOM_VERSION);
    return 0;
  }

  /* A peer that goes away must give EPIPE on write, which is reported, not kill the plugin. */
  signal(SIGPIPE, SIG_IGN);

  struct buf in = {0};
  buf_reserve(&in, 0);
  for (;;) {
    buf_reserve(&in, 65536);
    ssize_t r = read(0, in.data + in.len, in.cap - in.len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(5, strerror(errno), "reading the network configuration from stdin failed");
    if (r == 0) break;
    in.len += (size_t)r;
    if (in.len > MAX_REQUEST) fail(7, "", "the network configuration on stdin is over the limit of %d bytes", MAX_REQUEST);
  }
  in.data[in.len] = '\0';

  char version[32];
  int parsed = json_top_string(in.data, in.len, "cniVersion", version, sizeof version);
  if (parsed == 1) strcpy(cni_version, version);

  const char *command = getenv("CNI_COMMAND");
  if (command && strcmp(command, "VERSION") == 0) {
    printf("{\"cniVersion\":\"%s\",\"supportedVersions\":%s}\n", CNI_VERSION, SUPPORTED_VERSIONS);
    return 0;
  }
  if (!command && isatty(0)) {
    usage();
    return 2;
  }

  /* Without a readable configuration there is no agent socket to ask: say what is wrong here. */
  if (parsed < 0) fail(6, "", "the network configuration on stdin is not a JSON object");
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  if (json_top_string(in.data, in.len, "agentSocket", path, sizeof path) != 1 || !*path) strcpy(path, DEFAULT_AGENT_SOCKET);
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) fail(7, path, "agentSocket is longer than a unix socket path can be");

  /* The request body: every CNI_* variable and stdin. */
  struct buf body = {0};
  buf_str(&body, "{\"env\":{");
  int first = 1;
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (strncmp(*e, "CNI_", 4) != 0 || !eq) continue;
    if (!first) buf_add(&body, ",", 1);
    first = 0;
    buf_json(&body, *e, (size_t)(eq - *e));
    buf_add(&body, ":", 1);
    buf_json(&body, eq + 1, strlen(eq + 1));
  }
  buf_str(&body, "},\"stdin\":");
  buf_json(&body, in.data, in.len);
  buf_str(&body, "}");
  if (body.len > MAX_REQUEST) {
    fail(7, "shorten the configuration (prevResult included); characters such as quotes and control characters count more than once",
         "the network configuration is too large: the request to the Loom agent would be %zu bytes, over the limit of %d bytes", body.len, MAX_REQUEST);
  }

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(11, strerror(errno), "cannot create a socket to reach the Loom agent");
  struct timeval tv = {TIMEOUT_SECONDS, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, path, strlen(path));
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    int err = errno;
    char details[sizeof path + 128];
    snprintf(details, sizeof details, "connect %s: %s; start loom-agent on this host, or set \"agentSocket\" in the network configuration", path, strerror(err));
    fail(11, details, "the Loom agent is not running (no answer on %s)", path);
  }

  char head[256];
  int hn = snprintf(head, sizeof head, "POST /v1/cni HTTP/1.1\r\nHost: loom-agent\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", body.len);
  int werr = write_all_fd(fd, head, (size_t)hn);
  if (!werr) werr = write_all_fd(fd, body.data, body.len);
  /* The agent may have answered before closing (e.g. refusing the request): read what it sent. */
  if (werr) shutdown(fd, SHUT_WR);

  struct buf reply = {0};
  for (;;) {
    buf_reserve(&reply, 65536);
    ssize_t r = read(fd, reply.data + reply.len, reply.cap - reply.len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) fail(11, path, "no answer from the Loom agent within %d s", TIMEOUT_SECONDS);
    if (r < 0) fail(11, strerror(errno), "reading the Loom agent's answer failed");
    if (r == 0) break;
    reply.len += (size_t)r;
    if (reply.len > MAX_REPLY) fail(5, "", "the Loom agent's answer is over %d bytes", MAX_REPLY);
  }
  close(fd);
  if (reply.len == 0 && werr) fail(11, strerror(werr), "the Loom agent closed the connection while the request was sent (%s)", path);
  if (reply.len == 0) fail(11, path, "the Loom agent closed the connection without answering");
  reply.data[reply.len] = '\0';

  /* HTTP/1.1 response: status line, headers, Content-Length body (the agent always sets it). */
  char *sep = strstr(reply.data, "\r\n\r\n");
  int status = 0;
  if (!sep || sscanf(reply.data, "HTTP/1.%*d %d", &status) != 1) fail(5, "", "the Loom agent's answer is not HTTP");
  *sep = '\0';
  const char *bodyStart = sep + 4;
  size_t bodyLen = reply.len - (size_t)(bodyStart - reply.data);
  int exitCode = -1;
  long contentLength = -1;
  for (char *line = strstr(reply.data, "\r\n"); line; line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, "loom-cni-exit:", 14) == 0) exitCode = atoi(line + 14);
    if (strncasecmp(line, "content-length:", 15) == 0) contentLength = strtol(line + 15, NULL, 10);
  }
  if (contentLength >= 0 && (size_t)contentLength != bodyLen) {
    fail(11, path, "the Loom agent's answer was cut short (%zu of %ld bytes)", bodyLen, contentLength);
  }
  /* An exit status must be a byte, and a failure must come with the agent's CNI error object. */
  if (exitCode > 255 || (exitCode > 0 && bodyLen == 0)) exitCode = -1;
  if (status != 200 || exitCode < 0) {
    char details[256];
    snprintf(details, sizeof details, "%.*s", (int)(bodyLen < 200 ? bodyLen : 200), bodyStart);
    fail(5, details, "the Loom agent answered HTTP %d without a CNI result (is the agent older than the plugin?)", status);
  }
  fwrite(bodyStart, 1, bodyLen, stdout);
  if (fflush(stdout) != 0) return 1;
  return exitCode;
}

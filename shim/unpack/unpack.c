// skiff-unpack: one image layer, a tar (gzip, zstd or plain) read from stdin, unpacked into
// an existing directory. skiffd starts one per layer (src/image/unpack.ts) and writes the
// layer's bytes into its stdin as they download.
//
//   skiff-unpack <gzip|zstd|none> <dir> [<blob> <size>]
//
// The layer's bytes come from stdin, or with <blob> from that file, which skiffd is still
// writing (a download in parallel ranges): stdin then says how far it is written in order,
// a decimal number a line, and ends when the download ends. On success it prints
// {"diffId":"sha256:<hex>"}, the digest of the whole uncompressed stream (with <blob>, also
// "digest", that of the blob's <size> bytes, all read), and exits 0. On failure it prints one line to stderr, "<kind> <message>", and
// exits 1: kind is "escape" (an entry would land outside dir), "invalid" (the layer is
// malformed) or an errno name (the host failed: ENOSPC, EIO, ...). What it wrote stays;
// skiffd removes dir.
//
// OCI whiteouts become overlayfs whiteouts (a 0:0 char device; the "opaque" xattr for
// .wh..wh..opq). No entry lands outside dir: absolute names and ".." are refused, a
// parent that is a symlink (an earlier entry may plant one) is refused, and every file is
// made with O_EXCL|O_NOFOLLOW, an existing path removed first, never written through.
// Only this process changes dir while it runs, so a path checked stays as checked.
//
// Why native: in skiffd (lite-mode JavaScript on one thread, tar-stream's streams and a
// promise per entry) a pull of the bench's 207 MB image spent 1.1 s of CPU on its unpack
// thread, which was busy for the whole pull and made it its long pole.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

enum compression { COMP_NONE, COMP_GZIP, COMP_ZSTD };

#define BLOCK 512
#define IN_SIZE (1024 * 1024)
#define OUT_SIZE (256 * 1024)
/* A blob's bytes read are sent to the disk in steps of this much. */
#define FLUSH_STEP (8 * 1024 * 1024)
/* Decompressed slots between the two threads (2 MiB). */
#define NSLOTS 8
#define MAX_ENTRY (UINT64_C(1) << 62)
#define WHITEOUT_PREFIX ".wh."
#define OPAQUE_MARKER ".wh..wh..opq"

/* ---- failing ---- */

static void die_kind(const char *kind, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die_kind(const char *kind, const char *fmt, ...) {
	char msg[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (char *c = msg; *c; c++)
		if (*c == '\n') *c = ' ';
	/* Either thread may fail: the first one reports, and the process ends with it. */
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&once);
	fprintf(stderr, "%s %s\n", kind, msg);
	_exit(1);
}
#define die_escape(...) die_kind("escape", __VA_ARGS__)
#define die_invalid(...) die_kind("invalid", __VA_ARGS__)

/** A host call failed: the errno's name is the kind. */
static void die_errno(const char *what, const char *path) __attribute__((noreturn));
static void die_errno(const char *what, const char *path) {
	int e = errno;
	const char *name = strerrorname_np(e);
	die_kind(name ? name : "EIO", "%s %s: %s", what, path, strerror(e));
}

/* ---- the uncompressed stream: decompressed, hashed, read in exact amounts ---- */

struct stream {
	/* The decoding thread's: the input, its decompression and the blob's digest. */
	enum compression comp;
	z_stream z;
	bool z_done; /* a gzip member ended: the next bytes start a member or are trailing junk */
	bool z_junk; /* what follows the last member is not gzip: read (and dropped) to the end */
	ZSTD_DStream *zs;
	size_t zs_last; /* ZSTD_decompressStream's last hint: 0 at a frame's end */
	/* With a blob file: its fd, size, what is read, how far it is written (from stdin). */
	int blob_fd;
	uint64_t blob_size, blob_pos, blob_written, blob_flushed;
	EVP_MD_CTX *blob_sha;
	char line[32];
	size_t line_len;
	uint8_t in[IN_SIZE];
	size_t in_pos, in_len;
	bool in_eof;
	/* Between the threads: decompressed bytes in slots, filled and taken in turn. */
	pthread_mutex_t mu;
	pthread_cond_t filled, freed;
	uint8_t slot[NSLOTS][OUT_SIZE];
	size_t slot_len[NSLOTS];
	unsigned fill_at, take_at, nfull; /* nfull counts the slot being read too */
	bool ended;
	/* The unpacking thread's: the slot it reads, and the tar's digest. */
	EVP_MD_CTX *sha;
	bool taken;
	const uint8_t *out;
	size_t out_pos, out_len;
};

static bool parse_u64(const char *s, size_t n, uint64_t *out);

/** Waits until the blob is written beyond what is read: reads stdin's next lines. */
static void wait_written(struct stream *s) {
	while (s->blob_written <= s->blob_pos) {
		char buf[256];
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) die_errno("read", "stdin");
		if (n == 0) die_invalid("the blob ended at %llu of %llu bytes", (unsigned long long)s->blob_pos, (unsigned long long)s->blob_size);
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (s->line_len == sizeof s->line - 1) die_invalid("stdin: a line too long");
				s->line[s->line_len++] = buf[i];
				continue;
			}
			uint64_t v;
			if (!parse_u64(s->line, s->line_len, &v) || v > s->blob_size) die_invalid("stdin: bad length \"%.*s\"", (int)s->line_len, s->line);
			if (v > s->blob_written) s->blob_written = v;
			s->line_len = 0;
		}
	}
}

/** The blob's next bytes, as far as they are written. */
static bool fill_from_blob(struct stream *s) {
	if (s->blob_pos == s->blob_size) {
		s->in_eof = true;
		return false;
	}
	wait_written(s);
	uint64_t want = s->blob_written - s->blob_pos;
	if (want > sizeof s->in) want = sizeof s->in;
	ssize_t n;
	do n = pread(s->blob_fd, s->in, (size_t)want, (off_t)s->blob_pos);
	while (n < 0 && errno == EINTR);
	if (n < 0) die_errno("read", "the blob");
	if (n == 0) die_invalid("the blob is shorter than %llu bytes written", (unsigned long long)s->blob_written);
	if (EVP_DigestUpdate(s->blob_sha, s->in, (size_t)n) != 1) die_invalid("sha256 failed");
	s->blob_pos += (uint64_t)n;
	/* skiffd fsyncs the blob once it is all there: what was read is sent to the disk now,
	 * so that the fsync waits for the last few MiB only, not for the whole blob (a hint:
	 * its failure is the fsync's to report). */
	if (s->blob_pos - s->blob_flushed >= FLUSH_STEP || s->blob_pos == s->blob_size) {
		sync_file_range(s->blob_fd, (off_t)s->blob_flushed, (off_t)(s->blob_pos - s->blob_flushed), SYNC_FILE_RANGE_WRITE);
		s->blob_flushed = s->blob_pos;
	}
	s->in_pos = 0;
	s->in_len = (size_t)n;
	return true;
}

static bool fill_input(struct stream *s) {
	if (s->in_pos < s->in_len) return true;
	if (s->in_eof) return false;
	if (s->blob_fd >= 0) return fill_from_blob(s);
	for (;;) {
		ssize_t n = read(STDIN_FILENO, s->in, sizeof s->in);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) die_errno("read", "stdin");
		s->in_pos = 0;
		s->in_len = (size_t)n;
		if (n == 0) s->in_eof = true;
		return n > 0;
	}
}

/** Decompresses the next bytes into out (at most cap of them); 0 at the stream's end. */
static size_t decode(struct stream *s, uint8_t *out, size_t cap) {
	size_t made = 0;
	while (made == 0) {
		if (!fill_input(s)) {
			if (s->comp == COMP_GZIP && !s->z_done) die_invalid("gzip: unexpected end of file");
			if (s->comp == COMP_ZSTD && s->zs_last != 0) die_invalid("zstd: unexpected end of file");
			return 0;
		}
		uint8_t *in = s->in + s->in_pos;
		size_t avail = s->in_len - s->in_pos;
		if (s->comp == COMP_NONE) {
			size_t n = avail < cap ? avail : cap;
			memcpy(out, in, n);
			s->in_pos += n;
			made = n;
		} else if (s->comp == COMP_GZIP) {
			if (s->z_junk || (s->z_done && avail >= 2 && !(in[0] == 0x1f && in[1] == 0x8b))) {
				/* Anything but another member (gzip allows several) ends the data, as gunzip's. */
				s->z_junk = true;
				s->in_pos = s->in_len;
				continue;
			}
			if (s->z_done) {
				if (inflateReset(&s->z) != Z_OK) die_invalid("gzip: cannot reset");
				s->z_done = false;
			}
			s->z.next_in = in;
			s->z.avail_in = (uInt)avail;
			s->z.next_out = out;
			s->z.avail_out = (uInt)cap;
			int r = inflate(&s->z, Z_NO_FLUSH);
			if (r == Z_STREAM_END) s->z_done = true;
			else if (r != Z_OK && r != Z_BUF_ERROR) die_invalid("gzip: %s", s->z.msg ? s->z.msg : "corrupt data");
			s->in_pos = s->in_len - s->z.avail_in;
			made = cap - s->z.avail_out;
		} else {
			ZSTD_inBuffer zin = {in, avail, 0};
			ZSTD_outBuffer zout = {out, cap, 0};
			size_t r = ZSTD_decompressStream(s->zs, &zout, &zin);
			if (ZSTD_isError(r)) die_invalid("zstd: %s", ZSTD_getErrorName(r));
			s->zs_last = r;
			s->in_pos += zin.pos;
			made = zout.pos;
		}
	}
	return made;
}

/*
 * The decoding thread: reads (and with a blob, hashes) the input and decompresses it into
 * the slots, while the main thread hashes the tar and makes its files. A layer then
 * takes two cores, not one: reading, hashing and inflating are half of its CPU
 * (perf, the bench's pull), and the last layer of a pull ran alone on one core.
 */
static void *decoder(void *arg) {
	struct stream *s = arg;
	for (bool end = false; !end;) {
		pthread_mutex_lock(&s->mu);
		while (s->nfull == NSLOTS) pthread_cond_wait(&s->freed, &s->mu);
		unsigned i = s->fill_at;
		pthread_mutex_unlock(&s->mu);
		size_t n = 0;
		while (n < OUT_SIZE) {
			size_t k = decode(s, s->slot[i] + n, OUT_SIZE - n);
			if (k == 0) {
				end = true;
				break;
			}
			n += k;
		}
		pthread_mutex_lock(&s->mu);
		if (n) {
			s->slot_len[i] = n;
			s->fill_at = (i + 1) % NSLOTS;
			s->nfull++;
		}
		s->ended = end;
		pthread_cond_signal(&s->filled);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

/** The next slot of decompressed bytes, hashed (the one read before goes back to the
 * decoder); false at the stream's end. */
static bool take(struct stream *s) {
	pthread_mutex_lock(&s->mu);
	if (s->taken) {
		s->take_at = (s->take_at + 1) % NSLOTS;
		s->nfull--;
		s->taken = false;
		pthread_cond_signal(&s->freed);
	}
	while (s->nfull == 0 && !s->ended) pthread_cond_wait(&s->filled, &s->mu);
	bool got = s->nfull > 0;
	unsigned i = s->take_at;
	pthread_mutex_unlock(&s->mu);
	if (!got) return false;
	s->taken = true;
	s->out = s->slot[i];
	s->out_pos = 0;
	s->out_len = s->slot_len[i];
	if (EVP_DigestUpdate(s->sha, s->out, s->out_len) != 1) die_invalid("sha256 failed");
	return true;
}

/** Up to n of the next bytes, in place (valid until the next call); 0 at the end. */
static size_t next_bytes(struct stream *s, size_t n, const uint8_t **p) {
	if (s->out_pos == s->out_len && !take(s)) return 0;
	size_t have = s->out_len - s->out_pos;
	if (n > have) n = have;
	*p = s->out + s->out_pos;
	s->out_pos += n;
	return n;
}

/** Exactly n bytes into buf; false when the stream ends first (at its very start only: ok). */
static size_t read_exact(struct stream *s, uint8_t *buf, size_t n) {
	size_t got = 0;
	while (got < n) {
		const uint8_t *p;
		size_t k = next_bytes(s, n - got, &p);
		if (k == 0) break;
		memcpy(buf + got, p, k);
		got += k;
	}
	return got;
}

/** The zeros after n bytes of data, up to the next block. */
static uint64_t padding(uint64_t n) {
	return (BLOCK - n % BLOCK) % BLOCK;
}

static void skip_bytes(struct stream *s, uint64_t n) {
	while (n) {
		const uint8_t *p;
		size_t k = next_bytes(s, n > OUT_SIZE ? OUT_SIZE : (size_t)n, &p);
		if (k == 0) die_invalid("tar: unexpected end of data");
		n -= k;
	}
}

/* ---- tar headers ---- */

/** xattrs from PAX SCHILY.xattr.*: names and raw values */
struct xattrs {
	size_t n;
	char **name;
	char **val;
	size_t *len;
};

struct header {
	char *name;
	char *linkname;
	char type;
	uint32_t mode;
	uint32_t uid, gid;
	uint64_t size;
	struct timespec mtime;
	uint32_t devmajor, devminor;
	struct xattrs xa;
};

/** The PAX records of the next entry (global ones, 'g', are read and dropped, as Go's
 * archive/tar does). */
struct pax {
	char *path, *linkpath;
	bool has_size, has_uid, has_gid, has_mtime;
	uint64_t size;
	uint32_t uid, gid;
	struct timespec mtime;
	struct xattrs xa;
};

static void *xmalloc(size_t n) {
	void *p = malloc(n ? n : 1);
	if (!p) {
		errno = ENOMEM;
		die_errno("malloc", "");
	}
	return p;
}

static void *xrealloc(void *p, size_t n) {
	p = realloc(p, n ? n : 1);
	if (!p) {
		errno = ENOMEM;
		die_errno("realloc", "");
	}
	return p;
}

static char *xstrndup(const char *s, size_t n) {
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

static void xattrs_free(struct xattrs *x) {
	for (size_t i = 0; i < x->n; i++) {
		free(x->name[i]);
		free(x->val[i]);
	}
	free(x->name);
	free(x->val);
	free(x->len);
	memset(x, 0, sizeof *x);
}

static void pax_clear(struct pax *x) {
	free(x->path);
	free(x->linkpath);
	xattrs_free(&x->xa);
	memset(x, 0, sizeof *x);
}

/** Sets name (nlen bytes) to val, replacing a value it has. */
static void xattr_set(struct xattrs *x, const char *name, size_t nlen, const char *val, size_t vlen) {
	for (size_t i = 0; i < x->n; i++) {
		if (strlen(x->name[i]) == nlen && memcmp(x->name[i], name, nlen) == 0) {
			free(x->val[i]);
			x->val[i] = xstrndup(val, vlen);
			x->len[i] = vlen;
			return;
		}
	}
	x->name = xrealloc(x->name, (x->n + 1) * sizeof *x->name);
	x->val = xrealloc(x->val, (x->n + 1) * sizeof *x->val);
	x->len = xrealloc(x->len, (x->n + 1) * sizeof *x->len);
	x->name[x->n] = xstrndup(name, nlen);
	x->val[x->n] = xstrndup(val, vlen);
	x->len[x->n] = vlen;
	x->n++;
}

static bool parse_u64(const char *s, size_t n, uint64_t *out) {
	uint64_t v = 0;
	if (n == 0) return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10) return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/** "1700000000.123456789" (a leading "-" for times before 1970). */
static bool parse_pax_time(const char *s, size_t n, struct timespec *t) {
	bool neg = n && s[0] == '-';
	size_t i = neg ? 1 : 0, dot = i;
	while (dot < n && s[dot] != '.') dot++;
	uint64_t sec;
	if (!parse_u64(s + i, dot - i, &sec)) return false;
	long nsec = 0;
	size_t digits = 0;
	for (size_t j = dot + 1; j < n; j++) {
		if (s[j] < '0' || s[j] > '9') return false;
		if (digits < 9) nsec = nsec * 10 + (s[j] - '0'), digits++;
	}
	while (digits < 9 && dot < n) nsec *= 10, digits++;
	t->tv_sec = neg ? -(time_t)sec : (time_t)sec;
	t->tv_nsec = nsec;
	if (neg && nsec) t->tv_sec -= 1, t->tv_nsec = 1000000000L - nsec;
	return true;
}

/** PAX records "<len> <key>=<value>\n" into x (the values of one header). */
static void parse_pax(struct pax *x, const char *buf, size_t n) {
	size_t pos = 0;
	while (pos < n) {
		size_t sp = pos;
		while (sp < n && buf[sp] != ' ') sp++;
		uint64_t len;
		/* "<len> " and at least "k=\n" must fit in the record's len bytes */
		if (sp >= n || !parse_u64(buf + pos, sp - pos, &len) || len > n - pos || len < sp - pos + 4) die_invalid("tar: bad PAX record");
		const char *rec = buf + sp + 1, *end = buf + pos + len - 1; /* end: the record's "\n" */
		if (*end != '\n') die_invalid("tar: bad PAX record");
		const char *eq = memchr(rec, '=', (size_t)(end - rec));
		if (!eq) die_invalid("tar: bad PAX record");
		size_t klen = (size_t)(eq - rec), vlen = (size_t)(end - eq - 1);
		const char *val = eq + 1;
		if ((klen == 4 && !memcmp(rec, "path", 4)) || (klen == 8 && !memcmp(rec, "linkpath", 8)))
			if (memchr(val, 0, vlen)) die_escape("tar entry \"%.*s\": NUL in name", (int)strnlen(val, vlen), val);
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(rec, k, klen) == 0)
		if (KEY("path")) {
			free(x->path);
			x->path = xstrndup(val, vlen);
		} else if (KEY("linkpath")) {
			free(x->linkpath);
			x->linkpath = xstrndup(val, vlen);
		} else if (KEY("size")) {
			if (!parse_u64(val, vlen, &x->size)) die_invalid("tar: bad PAX size");
			x->has_size = true;
		} else if (KEY("uid") || KEY("gid")) {
			uint64_t v;
			if (!parse_u64(val, vlen, &v) || v > UINT32_MAX) die_invalid("tar: bad PAX %.*s", (int)klen, rec);
			if (rec[0] == 'u') x->uid = (uint32_t)v, x->has_uid = true;
			else x->gid = (uint32_t)v, x->has_gid = true;
		} else if (KEY("mtime")) {
			if (!parse_pax_time(val, vlen, &x->mtime)) die_invalid("tar: bad PAX mtime");
			x->has_mtime = true;
		} else if (klen > 13 && memcmp(rec, "SCHILY.xattr.", 13) == 0) {
			xattr_set(&x->xa, rec + 13, klen - 13, val, vlen);
		}
#undef KEY
		pos += len;
	}
}

/** A numeric header field: octal text, or base-256 when its first byte has the high bit. */
static uint64_t num_field(const uint8_t *f, size_t n) {
	if (f[0] & 0x80) {
		uint64_t v = f[0] & 0x7f;
		for (size_t i = 1; i < n; i++) v = (v << 8) | f[i];
		return v;
	}
	uint64_t v = 0;
	size_t i = 0;
	while (i < n && (f[i] == ' ' || f[i] == 0)) i++;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) v = (v << 3) | (uint64_t)(f[i] - '0');
	return v;
}

static char *str_field(const uint8_t *f, size_t n) {
	size_t len = strnlen((const char *)f, n);
	return xstrndup((const char *)f, len);
}

static bool checksum_ok(const uint8_t *b) {
	uint64_t want = num_field(b + 148, 8);
	uint64_t u = 0;
	int64_t s = 0;
	for (int i = 0; i < BLOCK; i++) {
		uint8_t c = (i >= 148 && i < 156) ? ' ' : b[i];
		u += c;
		s += (int8_t)c;
	}
	return want == u || (int64_t)want == s;
}

/** The long data of a GNU 'L'/'K' entry or a PAX header, whole. */
static char *read_meta(struct stream *s, uint64_t size) {
	if (size > 16 * 1024 * 1024) die_invalid("tar: a %llu-byte metadata entry", (unsigned long long)size);
	char *buf = xmalloc((size_t)size + 1);
	if (read_exact(s, (uint8_t *)buf, (size_t)size) != size) die_invalid("tar: unexpected end of data");
	buf[size] = 0;
	skip_bytes(s, padding(size));
	return buf;
}

static void header_free(struct header *h) {
	free(h->name);
	free(h->linkname);
	xattrs_free(&h->xa);
	memset(h, 0, sizeof *h);
}

/** The next entry's header, its PAX and GNU long names applied; false at the end. */
static bool next_header(struct stream *s, struct header *h) {
	struct pax local = {0};
	char *long_name = NULL, *long_link = NULL;
	uint8_t b[BLOCK];
	for (;;) {
		size_t got = read_exact(s, b, BLOCK);
		if (got == 0) {
			if (long_name || long_link || local.path || local.xa.n) die_invalid("tar: unexpected end of data");
			free(long_name);
			free(long_link);
			pax_clear(&local);
			return false;
		}
		if (got < BLOCK) die_invalid("tar: unexpected end of data");
		bool zero = true;
		for (int i = 0; i < BLOCK && zero; i++) zero = b[i] == 0;
		if (zero) continue; /* the end-of-archive blocks; what follows is read (and hashed) too */
		if (!checksum_ok(b)) die_invalid("tar: invalid header (bad checksum)");
		char type = (char)b[156];
		uint64_t size = num_field(b + 124, 12);

		if (type == 'x' || type == 'g') {
			char *data = read_meta(s, size);
			if (type == 'x') parse_pax(&local, data, (size_t)size);
			free(data);
			continue;
		}
		if (type == 'L' || type == 'K') {
			char *data = read_meta(s, size);
			char **slot = type == 'L' ? &long_name : &long_link;
			free(*slot);
			*slot = data;
			continue;
		}
		memset(h, 0, sizeof *h);
		h->type = type ? type : '0';
		h->mode = (uint32_t)num_field(b + 100, 8);
		h->uid = (uint32_t)num_field(b + 108, 8);
		h->gid = (uint32_t)num_field(b + 116, 8);
		h->size = size;
		h->mtime.tv_sec = (time_t)num_field(b + 136, 12);
		h->devmajor = (uint32_t)num_field(b + 329, 8);
		h->devminor = (uint32_t)num_field(b + 337, 8);
		h->linkname = str_field(b + 157, 100);
		char *name = str_field(b, 100);
		if (memcmp(b + 257, "ustar\0", 6) == 0 && b[345]) {
			char *prefix = str_field(b + 345, 155);
			size_t lp = strlen(prefix), ln = strlen(name);
			char *full = xmalloc(lp + 1 + ln + 1);
			memcpy(full, prefix, lp);
			full[lp] = '/';
			memcpy(full + lp + 1, name, ln + 1);
			free(prefix);
			free(name);
			name = full;
		}
		h->name = name;
		if (long_name) free(h->name), h->name = long_name, long_name = NULL;
		if (long_link) free(h->linkname), h->linkname = long_link, long_link = NULL;
		if (local.path) free(h->name), h->name = xstrndup(local.path, strlen(local.path));
		if (local.linkpath) free(h->linkname), h->linkname = xstrndup(local.linkpath, strlen(local.linkpath));
		if (local.has_size) h->size = local.size;
		if (local.has_uid) h->uid = local.uid;
		if (local.has_gid) h->gid = local.gid;
		if (local.has_mtime) h->mtime = local.mtime;
		/* Old (pre-POSIX) tars mark a directory by its name's trailing slash alone, as Go reads them. */
		if (type == '\0' && h->name[0] && h->name[strlen(h->name) - 1] == '/') h->type = '5';
		/* Sizes are read in a uint64_t with a block's padding added: keep far from its end. */
		if (h->size > MAX_ENTRY) die_invalid("tar entry \"%s\": %llu bytes", h->name, (unsigned long long)h->size);
		h->xa = local.xa;
		memset(&local.xa, 0, sizeof local.xa);
		pax_clear(&local);
		return true;
	}
}

/* ---- the tree ---- */

struct unpack {
	char *root;
	size_t root_len;
	bool as_root;
	/* The last parent dir walked (a layer lists a dir's entries together): its path and
	 * whether it is setgid. Cleared whenever anything is removed. */
	char *last_parent;
	bool last_setgid;
	/* Directory times, set last (creating entries inside changes them). */
	size_t ndirs, capdirs;
	char **dir_path;
	struct timespec *dir_time;
};

/** An entry name's components, with "" and "." dropped; refuses escapes. n: their count. */
static char **entry_parts(const char *name, const char *what, const char *shown, size_t *n) {
	if (name[0] == '/') die_escape("tar %s \"%s\": absolute path", what, shown);
	char **parts = xmalloc((strlen(name) / 2 + 2) * sizeof *parts);
	size_t k = 0;
	const char *p = name;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			for (size_t i = 0; i < k; i++) free(parts[i]);
			free(parts);
			die_escape("tar %s \"%s\": \"..\" leaves the layer", what, shown);
		}
		if (len && !(len == 1 && p[0] == '.')) parts[k++] = xstrndup(p, len);
		p += len;
		if (*p == '/') p++;
	}
	*n = k;
	return parts;
}

static void free_parts(char **parts, size_t n) {
	for (size_t i = 0; i < n; i++) free(parts[i]);
	free(parts);
}

/** dir/name, newly allocated. */
static char *child_path(const char *dir, const char *name) {
	size_t dl = strlen(dir), nl = strlen(name);
	char *out = xmalloc(dl + 1 + nl + 1);
	memcpy(out, dir, dl);
	out[dl] = '/';
	memcpy(out + dl + 1, name, nl + 1);
	return out;
}

/** root/parts[0]/.../parts[upto-1] */
static char *join(const struct unpack *u, char **parts, size_t upto) {
	size_t len = u->root_len;
	for (size_t i = 0; i < upto; i++) len += 1 + strlen(parts[i]);
	char *out = xmalloc(len + 1), *w = out;
	memcpy(w, u->root, u->root_len);
	w += u->root_len;
	for (size_t i = 0; i < upto; i++) {
		*w++ = '/';
		size_t l = strlen(parts[i]);
		memcpy(w, parts[i], l);
		w += l;
	}
	*w = 0;
	return out;
}

static const char *rel(const struct unpack *u, const char *path) {
	return path[u->root_len] == '/' ? path + u->root_len + 1 : ".";
}

/**
 * Walks (and with create, makes) the parent dirs of parts inside root; none may be a
 * symlink. Returns the parent's path (the caller frees it) and whether it is setgid.
 */
static char *parent_dir(struct unpack *u, char **parts, size_t n, const char *name, bool create, bool *setgid) {
	char *parent = join(u, parts, n - 1);
	if (u->last_parent && strcmp(u->last_parent, parent) == 0) {
		*setgid = u->last_setgid;
		return parent;
	}
	struct stat st;
	if (lstat(u->root, &st) < 0) die_errno("lstat", u->root);
	bool sg = (st.st_mode & S_ISGID) != 0;
	for (size_t i = 1; i < n; i++) {
		char *dir = join(u, parts, i);
		if (lstat(dir, &st) < 0) {
			if (errno != ENOENT) die_errno("lstat", dir);
			if (!create) die_invalid("tar entry \"%s\": %s does not exist", name, rel(u, dir));
			if (mkdir(dir, 0755) < 0) die_errno("mkdir", dir); /* a setgid parent makes it setgid */
			if (lstat(dir, &st) < 0) die_errno("lstat", dir);
		} else if (S_ISLNK(st.st_mode)) {
			die_escape("tar entry \"%s\": goes through the symlink %s", name, rel(u, dir));
		} else if (!S_ISDIR(st.st_mode)) {
			die_invalid("tar entry \"%s\": %s is not a directory", name, rel(u, dir));
		}
		sg = (st.st_mode & S_ISGID) != 0;
		free(dir);
	}
	free(u->last_parent);
	u->last_parent = xstrndup(parent, strlen(parent));
	u->last_setgid = sg;
	*setgid = sg;
	return parent;
}

/** rm -rf of what is at path (never following a symlink). */
static void remove_tree(const char *path) {
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT) return;
		die_errno("lstat", path);
	}
	if (S_ISDIR(st.st_mode)) {
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) die_errno("open", path);
		DIR *d = fdopendir(fd);
		if (!d) die_errno("opendir", path);
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
			char *child = child_path(path, e->d_name);
			remove_tree(child);
			free(child);
		}
		closedir(d);
		if (rmdir(path) < 0) die_errno("rmdir", path);
	} else if (unlink(path) < 0 && errno != ENOENT) {
		die_errno("unlink", path);
	}
}

/** What is at target goes, unless keep_dir and it is a directory. */
static void remove_existing(struct unpack *u, const char *target, bool keep_dir) {
	struct stat st;
	if (lstat(target, &st) < 0) {
		if (errno == ENOENT) return;
		die_errno("lstat", target);
	}
	if (keep_dir && S_ISDIR(st.st_mode)) return;
	free(u->last_parent);
	u->last_parent = NULL;
	remove_tree(target);
}

/**
 * Owner, mode, xattrs and times of a new entry; through fd when it is an open regular
 * file (-1: by path, never following a symlink). Calls that would change nothing are
 * left out: chown when root made it 0:0 and the entry says 0:0; chmod when it was made
 * with the entry's mode. chmod comes after chown (which clears setuid and setgid), and
 * xattrs after both (chown drops security.capability).
 */
static void apply_metadata(struct unpack *u, const char *target, const struct header *h, bool owner_is_root, bool mode_made, int fd) {
	if (!(owner_is_root && h->uid == 0 && h->gid == 0)) {
		if ((fd >= 0 ? fchown(fd, h->uid, h->gid) : lchown(target, h->uid, h->gid)) < 0) die_errno("chown", target);
	}
	if (h->type != '2' && !mode_made) {
		if ((fd >= 0 ? fchmod(fd, h->mode & 07777) : chmod(target, h->mode & 07777)) < 0) die_errno("chmod", target);
	}
	for (size_t i = 0; i < h->xa.n; i++) {
		/* The layer may not fake overlay metadata (whiteouts, opacity). */
		if (strncmp(h->xa.name[i], "trusted.overlay.", 16) == 0) continue;
		int r = fd >= 0 ? fsetxattr(fd, h->xa.name[i], h->xa.val[i], h->xa.len[i], 0) : lsetxattr(target, h->xa.name[i], h->xa.val[i], h->xa.len[i], 0);
		if (r < 0) die_errno("setxattr", target);
	}
	struct timespec t[2] = {h->mtime, h->mtime};
	if (h->type == '5') {
		if (u->ndirs == u->capdirs) {
			u->capdirs = u->capdirs ? u->capdirs * 2 : 64;
			u->dir_path = xrealloc(u->dir_path, u->capdirs * sizeof *u->dir_path);
			u->dir_time = xrealloc(u->dir_time, u->capdirs * sizeof *u->dir_time);
		}
		u->dir_path[u->ndirs] = xstrndup(target, strlen(target));
		u->dir_time[u->ndirs++] = h->mtime;
	} else if ((fd >= 0 ? futimens(fd, t) : utimensat(AT_FDCWD, target, t, AT_SYMLINK_NOFOLLOW)) < 0) {
		die_errno("utimensat", target);
	}
}

/** A regular file: made fresh (an earlier entry's path goes first), its bytes from s. */
static void make_file(struct unpack *u, struct stream *s, const char *target, const struct header *h, bool owner_is_root) {
	int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, h->mode & 0777);
	if (fd < 0 && errno == EEXIST) {
		remove_existing(u, target, false);
		fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, h->mode & 0777);
	}
	if (fd < 0) die_errno("open", target);
	uint64_t left = h->size;
	while (left) {
		const uint8_t *p;
		size_t n = next_bytes(s, left > OUT_SIZE ? OUT_SIZE : (size_t)left, &p);
		if (n == 0) die_invalid("tar entry \"%s\": unexpected end of data", h->name);
		left -= n;
		while (n) {
			ssize_t w = write(fd, p, n);
			if (w < 0 && errno == EINTR) continue;
			if (w <= 0) die_errno("write", target);
			p += w;
			n -= (size_t)w;
		}
	}
	/* Made with umask 0: the mode is the entry's unless it has setuid, setgid or sticky. */
	apply_metadata(u, target, h, owner_is_root, (h->mode & 07777) == (h->mode & 0777), fd);
	if (close(fd) < 0) die_errno("close", target);
}

static void apply_entry(struct unpack *u, struct stream *s, struct header *h) {
	size_t n;
	char **parts = entry_parts(h->name, "entry", h->name, &n);
	/* Links, devices, fifos and dirs have no data whatever their size says (as Go's
	 * archive/tar reads them, which wrote most image layers). */
	uint64_t body = strchr("123456", h->type) ? 0 : h->size;
	if (n == 0) { /* the layer root itself ("./") */
		free_parts(parts, n);
		skip_bytes(s, body + padding(body));
		return;
	}
	bool parent_setgid;
	char *parent = parent_dir(u, parts, n, h->name, true, &parent_setgid);
	const char *base = parts[n - 1];
	char *target = child_path(parent, base);
	/* A new entry is root's when root makes it, but takes a setgid parent's group. */
	bool owner_is_root = u->as_root && !parent_setgid;
	bool consumed = false;

	if (strcmp(base, OPAQUE_MARKER) == 0) {
		if (lsetxattr(parent, "trusted.overlay.opaque", "y", 1, 0) < 0) die_errno("setxattr", parent);
	} else if (strncmp(base, WHITEOUT_PREFIX, 4) == 0) {
		const char *hidden = base + 4;
		if (!*hidden || !strcmp(hidden, ".") || !strcmp(hidden, "..")) die_escape("tar entry \"%s\": bad whiteout", h->name);
		char *wt = child_path(parent, hidden);
		remove_existing(u, wt, false);
		if (mknod(wt, S_IFCHR, makedev(0, 0)) < 0) die_errno("mknod", wt);
		free(wt);
	} else {
		switch (h->type) {
		case '5':
			if (mkdir(target, 0700) < 0) {
				if (errno != EEXIST) die_errno("mkdir", target);
				/* An earlier entry's directory stays (with its contents); anything else goes. */
				remove_existing(u, target, true);
				if (mkdir(target, 0700) < 0 && errno != EEXIST) die_errno("mkdir", target);
			}
			if (u->last_parent && strcmp(u->last_parent, target) == 0) u->last_setgid = (h->mode & S_ISGID) != 0;
			apply_metadata(u, target, h, false, false, -1);
			break;
		case '0':
		case '7':
			make_file(u, s, target, h, owner_is_root);
			consumed = true;
			break;
		case '2':
			/* The link's text is data for the container; it is never followed here. */
			if (symlink(h->linkname, target) < 0) {
				if (errno != EEXIST) die_errno("symlink", target);
				remove_existing(u, target, false);
				if (symlink(h->linkname, target) < 0) die_errno("symlink", target);
			}
			apply_metadata(u, target, h, owner_is_root, true, -1);
			break;
		case '1': {
			char what[64 + 4096];
			snprintf(what, sizeof what, "hardlink target of \"%s\"", h->name);
			size_t ln;
			char **lparts = entry_parts(h->linkname, what, h->linkname, &ln);
			if (ln == 0) die_escape("tar entry \"%s\": hardlink to the layer root", h->name);
			bool ignored;
			char *lparent = parent_dir(u, lparts, ln, h->name, false, &ignored);
			char *source = child_path(lparent, lparts[ln - 1]);
			struct stat st;
			if (lstat(source, &st) < 0 || S_ISDIR(st.st_mode)) die_invalid("tar entry \"%s\": hardlink target \"%s\" is missing or a directory", h->name, h->linkname);
			if (link(source, target) < 0) {
				if (errno != EEXIST) die_errno("link", target);
				remove_existing(u, target, false);
				if (link(source, target) < 0) die_errno("link", target);
			}
			free(source);
			free(lparent);
			free_parts(lparts, ln);
			break; /* the inode's metadata is the target's */
		}
		case '3':
		case '4':
		case '6': {
			remove_existing(u, target, false);
			mode_t kind = h->type == '6' ? S_IFIFO : h->type == '4' ? S_IFBLK : S_IFCHR;
			if (mknod(target, kind | (h->mode & 07777), makedev(h->devmajor, h->devminor)) < 0) die_errno("mknod", target);
			apply_metadata(u, target, h, false, false, -1);
			break;
		}
		default:
			die_invalid("tar entry \"%s\": unsupported type '%c'", h->name, h->type);
		}
	}
	/* A file's data was read as it was made; any other entry's is skipped. */
	skip_bytes(s, (consumed ? 0 : body) + padding(body));
	free(target);
	free(parent);
	free_parts(parts, n);
}

int main(int argc, char **argv) {
	if (argc != 3 && argc != 5) {
		fprintf(stderr, "usage: skiff-unpack <gzip|zstd|none> <dir> [<blob> <size>]\n");
		return 2;
	}
	/* skiffd owns the layer dir: if it dies, so does the unpack (it removes the dir on restart). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	static struct stream s;
	if (!strcmp(argv[1], "gzip")) s.comp = COMP_GZIP;
	else if (!strcmp(argv[1], "zstd")) s.comp = COMP_ZSTD;
	else if (!strcmp(argv[1], "none")) s.comp = COMP_NONE;
	else die_invalid("unknown compression \"%s\"", argv[1]);
	if (s.comp == COMP_GZIP && inflateInit2(&s.z, 15 + 16) != Z_OK) die_invalid("gzip: cannot start");
	/* No CRC-32 of what it inflates: the tar's SHA-256 (the diff_id, checked) covers every
	 * byte, and the blob's (checked before it is kept) every compressed one. perf: 5% of
	 * skiff-unpack's CPU in a pull. */
	if (s.comp == COMP_GZIP && inflateValidate(&s.z, 0) != Z_OK) die_invalid("gzip: cannot start");
	if (s.comp == COMP_ZSTD && !(s.zs = ZSTD_createDStream())) die_invalid("zstd: cannot start");
	s.sha = EVP_MD_CTX_new();
	if (!s.sha || EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL) != 1) die_invalid("sha256: cannot start");
	s.blob_fd = -1;
	if (argc == 5) {
		s.blob_fd = open(argv[3], O_RDONLY | O_CLOEXEC);
		if (s.blob_fd < 0) die_errno("open", argv[3]);
		if (!parse_u64(argv[4], strlen(argv[4]), &s.blob_size)) die_invalid("bad blob size \"%s\"", argv[4]);
		s.blob_sha = EVP_MD_CTX_new();
		if (!s.blob_sha || EVP_DigestInit_ex(s.blob_sha, EVP_sha256(), NULL) != 1) die_invalid("sha256: cannot start");
	} else {
		/* Fewer, larger reads of what skiffd writes. */
		fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1024 * 1024);
	}
	umask(0);

	struct unpack u = {0};
	u.root = realpath(argv[2], NULL);
	if (!u.root) die_errno("realpath", argv[2]);
	u.root_len = strlen(u.root);
	u.as_root = geteuid() == 0 && getegid() == 0;

	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.filled, NULL);
	pthread_cond_init(&s.freed, NULL);
	pthread_t decoding;
	if ((errno = pthread_create(&decoding, NULL, decoder, &s))) die_errno("pthread_create", "decoder");
	struct header h;
	while (next_header(&s, &h)) {
		apply_entry(&u, &s, &h);
		header_free(&h);
	}
	/* next_header read to the end: the decoder is done. */
	if ((errno = pthread_join(decoding, NULL))) die_errno("pthread_join", "decoder");
	/* Directory times last, innermost (latest) first. */
	for (size_t i = u.ndirs; i-- > 0;) {
		struct timespec t[2] = {u.dir_time[i], u.dir_time[i]};
		if (utimensat(AT_FDCWD, u.dir_path[i], t, AT_SYMLINK_NOFOLLOW) < 0) die_errno("utimensat", u.dir_path[i]);
	}
	if (s.blob_fd >= 0 && s.blob_pos != s.blob_size) die_invalid("the blob has %llu bytes after the layer's data", (unsigned long long)(s.blob_size - s.blob_pos));
	uint8_t md[32];
	unsigned int mdlen = 0;
	if (EVP_DigestFinal_ex(s.sha, md, &mdlen) != 1 || mdlen != 32) die_invalid("sha256 failed");
	printf("{\"diffId\":\"sha256:");
	for (int i = 0; i < 32; i++) printf("%02x", md[i]);
	if (s.blob_fd >= 0) {
		if (EVP_DigestFinal_ex(s.blob_sha, md, &mdlen) != 1 || mdlen != 32) die_invalid("sha256 failed");
		printf("\",\"digest\":\"sha256:");
		for (int i = 0; i < 32; i++) printf("%02x", md[i]);
	}
	printf("\"}\n");
	if (fflush(stdout) != 0) die_errno("write", "stdout");
	return 0;
}

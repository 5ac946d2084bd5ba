/*
 * A token-level n-gram language model with interpolated Kneser-Ney smoothing, as an EFTRuntime
 * backend written in plain C11. It loads the count files `ngram-train` writes, decodes its options
 * (eft.v1.NGramOptions) with protobuf-c, and implements every slot of the ABI in eft_backend.h.
 *
 * The model: for a history h and a token w, with absolute discount D,
 *   p_k(w | h) = max(c_k(h w) − D, 0) / c_k(h •) + D · N1+(h •) / c_k(h •) · p_{k−1}(w | h')
 * where h' drops h's oldest token, c_N are the raw counts of the highest order, c_k (k < N) are
 * continuation counts (how many distinct tokens precede h w), and p_0 is uniform over the
 * vocabulary. A history never seen at order k stops the recursion at k − 1. Every probability is
 * positive, so logits (natural-log probabilities) are finite.
 *
 * Threading, as the ABI asks: a model is immutable after model_open (any thread may use it); a
 * session is used by one thread at a time and owns its scratch buffer.
 */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eft_backend.h"
#include "eft/v1/ngram_options.pb-c.h"

#define MAX_ORDER 6

/* ---- errors ---------------------------------------------------------------------------- */

struct eft_error {
  eft_status status;
  char message[512];
};

static eft_status fail(eft_error **error, eft_status status, const char *format, ...) {
  if (error) {
    eft_error *e = malloc(sizeof *e);
    if (e) {
      e->status = status;
      va_list args;
      va_start(args, format);
      vsnprintf(e->message, sizeof e->message, format, args);
      va_end(args);
    }
    *error = e; /* NULL when out of memory: the host reports the status alone */
  }
  return status;
}

static const char *error_message(const eft_error *e) { return e->message; }
static eft_status error_status(const eft_error *e) { return e->status; }
static void error_free(eft_error *e) { free(e); }

/* ---- the model ------------------------------------------------------------------------- */

/* One n-gram of order `n` with its count. */
typedef struct {
  int32_t ids[MAX_ORDER];
  int32_t n;
  double count;
} gram;

/* A token that followed a context, with its (raw or continuation) count. */
typedef struct {
  int32_t token;
  double count;
} follower;

/* A context of one order and its followers (items[start..<end]). */
typedef struct {
  int32_t ids[MAX_ORDER - 1];
  size_t start, end;
  double total; /* sum of the followers' counts */
} context;

/* Order k: contexts of k − 1 tokens, sorted, each with its followers. */
typedef struct {
  context *contexts;
  size_t n_contexts;
  follower *items;
  size_t n_items;
} level;

struct eft_model {
  int32_t vocab_size, context_length, bos, eos;
  int order; /* in use: ≤ the file's order */
  double discount;
  level levels[MAX_ORDER + 1]; /* levels[1 ... order] */
};

struct eft_session {
  const eft_model *model;
  int32_t *tokens;
  size_t length, capacity;
  double *scratch; /* vocab_size probabilities */
};

static int compare_ids(const int32_t *a, const int32_t *b, int n) {
  for (int i = 0; i < n; i++) {
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

static int compare_grams(const void *x, const void *y) {
  const gram *a = x, *b = y;
  return compare_ids(a->ids, b->ids, a->n);
}

/* Builds level `k` from n-grams of order k (sorted by compare_grams, duplicates summed). */
static int build_level(level *out, gram *grams, size_t n, int k) {
  qsort(grams, n, sizeof *grams, compare_grams);
  out->items = malloc((n ? n : 1) * sizeof *out->items);
  out->contexts = malloc((n ? n : 1) * sizeof *out->contexts);
  if (!out->items || !out->contexts) return 0;
  out->n_items = out->n_contexts = 0;
  for (size_t i = 0; i < n; i++) {
    int same_gram = out->n_items > 0 && i > 0 && compare_ids(grams[i].ids, grams[i - 1].ids, k) == 0;
    if (same_gram) {
      out->items[out->n_items - 1].count += grams[i].count;
      out->contexts[out->n_contexts - 1].total += grams[i].count;
      continue;
    }
    int same_context = out->n_contexts > 0 && compare_ids(grams[i].ids, out->contexts[out->n_contexts - 1].ids, k - 1) == 0;
    if (!same_context) {
      context *c = &out->contexts[out->n_contexts++];
      memset(c, 0, sizeof *c);
      memcpy(c->ids, grams[i].ids, (size_t)(k - 1) * sizeof(int32_t));
      c->start = c->end = out->n_items;
    }
    context *c = &out->contexts[out->n_contexts - 1];
    out->items[out->n_items++] = (follower){grams[i].ids[k - 1], grams[i].count};
    c->end = out->n_items;
    c->total += grams[i].count;
  }
  return 1;
}

static const context *find_context(const level *l, const int32_t *ids, int n) {
  size_t lo = 0, hi = l->n_contexts;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = compare_ids(l->contexts[mid].ids, ids, n);
    if (c == 0) return &l->contexts[mid];
    if (c < 0) lo = mid + 1; else hi = mid;
  }
  return NULL;
}

static void model_free(eft_model *m) {
  if (!m) return;
  for (int k = 0; k <= MAX_ORDER; k++) {
    free(m->levels[k].contexts);
    free(m->levels[k].items);
  }
  free(m);
}

/* Reads the count file written by ngram-train:
 *   eft-ngram 1
 *   vocab V  order N  bos B  eos E  context C     (one per line)
 *   counts
 *   <count> <id> … <id>                           (every distinct n-gram of orders 1 … N)
 *   end <number of n-gram lines>
 * The `end` line catches a file cut short. */
static eft_status read_model(const char *path, eft_model *m, int *file_order, gram **grams_out, size_t *n_out,
                             eft_error **error) {
  FILE *f = fopen(path, "r");
  if (!f) return fail(error, EFT_NOT_FOUND, "%s: cannot open (%s)", path, strerror(errno));
  char line[1024];
  int line_no = 0, in_counts = 0, ended = 0;
  size_t n = 0, capacity = 0;
  gram *grams = NULL;
  eft_status status = EFT_OK;
  *file_order = 0;
  while (fgets(line, sizeof line, f)) {
    line_no++;
    if (line[0] == '#' || line[0] == '\n') continue;
    if (line_no == 1) {
      if (strncmp(line, "eft-ngram 1", 11) != 0) {
        status = fail(error, EFT_DATA_LOSS, "%s:1: not an eft-ngram 1 file", path);
        break;
      }
      continue;
    }
    if (ended) {
      status = fail(error, EFT_DATA_LOSS, "%s:%d: text after the end line", path, line_no);
      break;
    }
    if (!in_counts) {
      char key[32];
      long value;
      if (strcmp(line, "counts\n") == 0) {
        in_counts = 1;
        continue;
      }
      if (sscanf(line, "%31s %ld", key, &value) != 2) {
        status = fail(error, EFT_DATA_LOSS, "%s:%d: expected 'key value'", path, line_no);
        break;
      }
      if (strcmp(key, "vocab") == 0) m->vocab_size = (int32_t)value;
      else if (strcmp(key, "order") == 0) *file_order = (int)value;
      else if (strcmp(key, "bos") == 0) m->bos = (int32_t)value;
      else if (strcmp(key, "eos") == 0) m->eos = (int32_t)value;
      else if (strcmp(key, "context") == 0) m->context_length = (int32_t)value;
      else {
        status = fail(error, EFT_DATA_LOSS, "%s:%d: unknown header key '%s'", path, line_no, key);
        break;
      }
      continue;
    }
    if (strncmp(line, "end ", 4) == 0) {
      long expected = strtol(line + 4, NULL, 10);
      if (expected != (long)n) {
        status = fail(error, EFT_DATA_LOSS, "%s:%d: the end line says %ld n-grams, the file has %zu", path, line_no, expected, n);
        break;
      }
      ended = 1;
      continue;
    }
    if (m->vocab_size <= 0 || *file_order < 1 || *file_order > MAX_ORDER || m->context_length <= 0) {
      status = fail(error, EFT_DATA_LOSS, "%s: the header needs vocab > 0, context > 0 and order in 1…%d", path, MAX_ORDER);
      break;
    }
    if (n == capacity) {
      capacity = capacity ? 2 * capacity : 4096;
      gram *grown = realloc(grams, capacity * sizeof *grams);
      if (!grown) {
        status = fail(error, EFT_RESOURCE_EXHAUSTED, "%s: out of memory at line %d", path, line_no);
        break;
      }
      grams = grown;
    }
    gram *g = &grams[n];
    memset(g, 0, sizeof *g);
    char *cursor = line, *end;
    g->count = strtod(cursor, &end);
    if (end == cursor || !(g->count > 0)) {
      status = fail(error, EFT_DATA_LOSS, "%s:%d: expected a positive count", path, line_no);
      break;
    }
    for (cursor = end;; cursor = end) {
      long id = strtol(cursor, &end, 10);
      if (end == cursor) break;
      if (g->n == *file_order || id < 0 || id >= m->vocab_size) {
        status = fail(error, EFT_DATA_LOSS, "%s:%d: more than %d ids, or an id outside [0, %d)", path, line_no, *file_order, m->vocab_size);
        break;
      }
      g->ids[g->n++] = (int32_t)id;
    }
    if (status != EFT_OK) break;
    if (g->n == 0) {
      status = fail(error, EFT_DATA_LOSS, "%s:%d: no token ids", path, line_no);
      break;
    }
    n++;
  }
  if (status == EFT_OK && ferror(f)) status = fail(error, EFT_DATA_LOSS, "%s: read error", path);
  if (status == EFT_OK && !ended) status = fail(error, EFT_DATA_LOSS, "%s: cut short (no end line after %d lines)", path, line_no);
  fclose(f);
  if (status != EFT_OK) {
    free(grams);
    return status;
  }
  *grams_out = grams;
  *n_out = n;
  return EFT_OK;
}

static eft_status model_open(const char *path, const uint8_t *options, size_t options_len, eft_model **out,
                             eft_error **error) {
  if (!path || !out) return fail(error, EFT_INVALID_ARGUMENT, "model_open: path and out must not be NULL");
  double discount = 0.75;
  unsigned order_limit = 0;
  if (options_len > 0) {
    Eft__V1__NGramOptions *o = eft__v1__ngram_options__unpack(NULL, options_len, options);
    if (!o) return fail(error, EFT_INVALID_ARGUMENT, "options: not a valid eft.v1.NGramOptions message (%zu bytes)", options_len);
    if (o->discount != 0) discount = o->discount;
    order_limit = o->order;
    eft__v1__ngram_options__free_unpacked(o, NULL);
    if (!(discount > 0 && discount < 1)) return fail(error, EFT_INVALID_ARGUMENT, "options: discount %g is outside (0, 1)", discount);
  }

  eft_model *m = calloc(1, sizeof *m);
  if (!m) return fail(error, EFT_RESOURCE_EXHAUSTED, "out of memory");
  m->bos = m->eos = -1;
  m->discount = discount;
  int file_order;
  gram *grams;
  size_t n;
  eft_status status = read_model(path, m, &file_order, &grams, &n, error);
  if (status != EFT_OK) {
    model_free(m);
    return status;
  }
  if (order_limit > (unsigned)file_order) {
    free(grams);
    model_free(m);
    return fail(error, EFT_INVALID_ARGUMENT, "options: order %u exceeds the model's order %d", order_limit, file_order);
  }
  m->order = order_limit ? (int)order_limit : file_order;

  /* The highest order keeps raw counts; order k < N counts, for each k-gram, the distinct tokens
   * that precede it: one per distinct (k+1)-gram it ends. The file lists distinct n-grams. */
  gram *at_order = malloc((n ? n : 1) * sizeof *at_order);
  if (!at_order) {
    free(grams);
    model_free(m);
    return fail(error, EFT_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (int k = 1; k <= m->order; k++) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
      if (k == m->order && grams[i].n == k) {
        at_order[count++] = grams[i];
      } else if (k < m->order && grams[i].n == k + 1) {
        gram g = {.n = k, .count = 1};
        memcpy(g.ids, grams[i].ids + 1, (size_t)k * sizeof(int32_t));
        at_order[count++] = g;
      }
    }
    if (!build_level(&m->levels[k], at_order, count, k)) {
      free(at_order);
      free(grams);
      model_free(m);
      return fail(error, EFT_RESOURCE_EXHAUSTED, "out of memory");
    }
  }
  free(at_order);
  free(grams);
  *out = m;
  return EFT_OK;
}

static eft_status model_describe(const eft_model *m, eft_model_info *info, eft_error **error) {
  if (!m || !info) return fail(error, EFT_INVALID_ARGUMENT, "model_describe: NULL argument");
  /* The fields of ABI 1.0 must fit; later ones are written when the host's struct has them. */
  size_t required = offsetof(eft_model_info, session_bytes_per_token);
  if (info->struct_size < required) {
    return fail(error, EFT_INVALID_ARGUMENT, "model_describe: info.struct_size %zu is smaller than %zu", info->struct_size, required);
  }
  info->vocab_size = m->vocab_size;
  info->context_length = m->context_length;
  info->bos_token_id = m->bos;
  info->eos_token_id = m->eos;
  info->architecture = "ngram-kn";
  info->tokenizer_fingerprint = "";
  if (info->struct_size >= offsetof(eft_model_info, session_bytes_per_token) + sizeof(uint64_t)) {
    info->session_bytes_per_token = sizeof(int32_t);  /* a session holds its token ids */
  }
  return EFT_OK;
}

/* ---- sessions -------------------------------------------------------------------------- */

static eft_status session_new(eft_model *m, eft_session **out, eft_error **error) {
  if (!m || !out) return fail(error, EFT_INVALID_ARGUMENT, "session_new: NULL argument");
  eft_session *s = calloc(1, sizeof *s);
  if (s) s->scratch = malloc((size_t)m->vocab_size * sizeof(double));
  if (!s || !s->scratch) {
    if (s) free(s);
    return fail(error, EFT_RESOURCE_EXHAUSTED, "out of memory");
  }
  s->model = m;
  *out = s;
  return EFT_OK;
}

static void session_free(eft_session *s) {
  if (!s) return;
  free(s->tokens);
  free(s->scratch);
  free(s);
}

/* Writes log p(· | tokens[0 ..< length]) into logits. */
static void next_logits(eft_session *s, size_t length, float *logits) {
  const eft_model *m = s->model;
  double *p = s->scratch;
  const double D = m->discount;
  for (int32_t w = 0; w < m->vocab_size; w++) p[w] = 1.0 / m->vocab_size;
  for (int k = 1; k <= m->order; k++) {
    if ((size_t)(k - 1) > length) break;
    const context *c = find_context(&m->levels[k], s->tokens + length - (k - 1), k - 1);
    if (!c) break;
    const double gamma = D * (double)(c->end - c->start) / c->total;
    for (int32_t w = 0; w < m->vocab_size; w++) p[w] *= gamma;
    for (size_t i = c->start; i < c->end; i++) {
      const follower *f = &m->levels[k].items[i];
      if (f->count > D) p[f->token] += (f->count - D) / c->total;
    }
  }
  for (int32_t w = 0; w < m->vocab_size; w++) logits[w] = (float)log(p[w]);
}

static eft_status session_append(eft_session *s, const int32_t *tokens, size_t n, eft_logits_mode mode, float *logits,
                                 eft_error **error) {
  if (!s) return fail(error, EFT_INVALID_ARGUMENT, "session_append: NULL session");
  if (n == 0 || !tokens) return fail(error, EFT_INVALID_ARGUMENT, "session_append: no tokens");
  if (mode != EFT_LOGITS_NONE && mode != EFT_LOGITS_LAST && mode != EFT_LOGITS_ALL) {
    return fail(error, EFT_INVALID_ARGUMENT, "session_append: unknown logits mode %d", (int)mode);
  }
  if (mode != EFT_LOGITS_NONE && !logits) return fail(error, EFT_INVALID_ARGUMENT, "session_append: logits is NULL");
  const eft_model *m = s->model;
  for (size_t i = 0; i < n; i++) {
    if (tokens[i] < 0 || tokens[i] >= m->vocab_size) {
      return fail(error, EFT_INVALID_ARGUMENT, "session_append: token %d (at %zu) is outside [0, %d)", tokens[i], i, m->vocab_size);
    }
  }
  if (n > (size_t)m->context_length - s->length) {
    return fail(error, EFT_OUT_OF_RANGE, "session_append: %zu + %zu tokens exceed the context length %d", s->length, n, m->context_length);
  }
  if (s->length + n > s->capacity) {
    size_t capacity = s->capacity ? s->capacity : 64;
    while (capacity < s->length + n) capacity *= 2;
    int32_t *grown = realloc(s->tokens, capacity * sizeof *grown);
    if (!grown) return fail(error, EFT_RESOURCE_EXHAUSTED, "out of memory");
    s->tokens = grown;
    s->capacity = capacity;
  }
  memcpy(s->tokens + s->length, tokens, n * sizeof *tokens);
  size_t start = s->length;
  s->length += n;
  if (mode == EFT_LOGITS_LAST) next_logits(s, s->length, logits);
  if (mode == EFT_LOGITS_ALL) {
    for (size_t i = 0; i < n; i++) next_logits(s, start + i + 1, logits + i * (size_t)m->vocab_size);
  }
  return EFT_OK;
}

/* The state is the token list itself, so truncating restores it exactly. */
static eft_status session_truncate(eft_session *s, size_t n, eft_error **error) {
  if (!s) return fail(error, EFT_INVALID_ARGUMENT, "session_truncate: NULL session");
  if (n > s->length) return fail(error, EFT_OUT_OF_RANGE, "session_truncate: %zu is past the end (%zu tokens)", n, s->length);
  s->length = n;
  return EFT_OK;
}

static size_t session_length(const eft_session *s) { return s ? s->length : 0; }

/* ---- the entry point ------------------------------------------------------------------- */

static const eft_backend table = {
  .abi_major = EFT_ABI_VERSION_MAJOR,
  .abi_minor = EFT_ABI_VERSION_MINOR,
  .struct_size = sizeof(eft_backend),
  .name = "ngram",
  .version = "1.0",
  .model_open = model_open,
  .model_free = model_free,
  .model_describe = model_describe,
  .session_new = session_new,
  .session_free = session_free,
  .session_append = session_append,
  .session_truncate = session_truncate,
  .session_length = session_length,
  .error_message = error_message,
  .error_status = error_status,
  .error_free = error_free,
};

/* The one exported symbol (the library is built with -fvisibility=hidden). */
__attribute__((visibility("default"))) const eft_backend *eft_backend_entry(void) { return &table; }

/* The smallest complete EFTRuntime backend: a uniform model (every next token equally likely),
 * in the shape any backend takes. Its "model file" is a text file holding the vocabulary size,
 * which is how a backend that is not a trained model learns it (it must equal the vocabulary of
 * the tokenizer the graph uses; the host checks). It is not a language model, so it reports no
 * EOS (-1): under a graph, any model's EOS would end generation.
 *
 *   cc -std=c11 -O2 -Wall -Wextra -fPIC -shared -fvisibility=hidden \
 *      -I ../../Sources/CEFTBackend/include -o build/libMinimalBackend.so minimal_backend.c
 *   eft backend-check build/libMinimalBackend.so --model model/uniform-1024.txt
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eft_backend.h"

struct eft_model { int32_t vocab; };
struct eft_session { const eft_model *model; size_t length; };
struct eft_error { eft_status status; char message[256]; };

enum { CONTEXT = 1 << 20 };

static eft_status fail(eft_error **error, eft_status status, const char *message) {
  eft_error *e = malloc(sizeof *e);
  if (e) { e->status = status; snprintf(e->message, sizeof e->message, "%s", message); }
  *error = e;
  return status;
}

static eft_status model_open(const char *path, const uint8_t *options, size_t options_len, eft_model **out, eft_error **error) {
  (void)options;
  if (options_len > 0) return fail(error, EFT_UNIMPLEMENTED, "the minimal backend takes no options");
  FILE *f = fopen(path, "r");
  if (!f) return fail(error, EFT_NOT_FOUND, "cannot open the model file (a text file holding the vocabulary size)");
  int vocab = 0;
  int read = fscanf(f, "%d", &vocab);
  fclose(f);
  if (read != 1 || vocab < 1) return fail(error, EFT_DATA_LOSS, "the model file does not hold a vocabulary size >= 1");
  if (!(*out = malloc(sizeof **out))) return fail(error, EFT_RESOURCE_EXHAUSTED, "out of memory");
  (*out)->vocab = vocab;
  return EFT_OK;
}

static void model_free(eft_model *model) { free(model); }

static eft_status model_describe(const eft_model *model, eft_model_info *info, eft_error **error) {
  /* Write only the fields the host's struct has (an older host has a shorter one). */
  if (info->struct_size < offsetof(eft_model_info, session_bytes_per_token))
    return fail(error, EFT_INVALID_ARGUMENT, "eft_model_info is too short");
  info->vocab_size = model->vocab;
  info->context_length = CONTEXT;
  info->bos_token_id = -1;
  info->eos_token_id = -1;
  info->architecture = "uniform";
  info->tokenizer_fingerprint = "";
  if (info->struct_size >= offsetof(eft_model_info, session_bytes_per_token) + sizeof(uint64_t))
    info->session_bytes_per_token = 0; /* holds no state per token */
  return EFT_OK;
}

static eft_status session_new(eft_model *model, eft_session **out, eft_error **error) {
  if (!(*out = calloc(1, sizeof **out))) return fail(error, EFT_RESOURCE_EXHAUSTED, "out of memory");
  (*out)->model = model;
  return EFT_OK;
}

static void session_free(eft_session *session) { free(session); }

static eft_status session_append(eft_session *s, const int32_t *tokens, size_t n, eft_logits_mode mode, float *logits,
                                 eft_error **error) {
  /* Check everything before changing anything: a failed append leaves the session as it was. */
  if (n == 0) return fail(error, EFT_INVALID_ARGUMENT, "an append needs at least one token");
  if (n > CONTEXT - s->length) return fail(error, EFT_OUT_OF_RANGE, "past the context length");
  for (size_t i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= s->model->vocab) return fail(error, EFT_INVALID_ARGUMENT, "a token id is outside the vocabulary");
  size_t rows = mode == EFT_LOGITS_ALL ? n : (mode == EFT_LOGITS_LAST ? 1 : 0);
  if (rows > 0) memset(logits, 0, rows * (size_t)s->model->vocab * sizeof(float)); /* equal logits: uniform */
  s->length += n;
  return EFT_OK;
}

static eft_status session_truncate(eft_session *s, size_t n, eft_error **error) {
  if (n > s->length) return fail(error, EFT_OUT_OF_RANGE, "truncating past the end");
  s->length = n;
  return EFT_OK;
}

static size_t session_length(const eft_session *s) { return s->length; }
static const char *error_message(const eft_error *e) { return e ? e->message : "out of memory"; }
static eft_status error_status(const eft_error *e) { return e ? e->status : EFT_RESOURCE_EXHAUSTED; }
static void error_free(eft_error *e) { free(e); }

static const eft_backend table = {
  EFT_ABI_VERSION_MAJOR, EFT_ABI_VERSION_MINOR, sizeof(eft_backend), "minimal", "1.0",
  model_open, model_free, model_describe, session_new, session_free, session_append, session_truncate,
  session_length, error_message, error_status, error_free,
  NULL, /* session_append_batch: optional; the host then calls session_append per session */
  NULL, /* session_set_deadline: optional; this backend never waits on anything */
};

/* The one exported symbol (-fvisibility=hidden hides everything else). */
__attribute__((visibility("default"))) const eft_backend *eft_backend_entry(void) { return &table; }

// A toy backend whose "model path" picks a defect, for `eft backend-check`'s own tests:
//   "good"                  keeps every promise (the control),
//   "batch-mismatch"        multi-token appends give logits other than one-by-one appends,
//   "truncate-keeps-state"  truncate forgets the tokens but not a running state derived from them,
//   "batch-crosstalk"       session_append_batch gives a session logits that depend on the batch,
//   "truncate-crashes"      session_truncate dereferences NULL (SIGSEGV),
//   "batch-hangs"           session_append_batch never returns,
//   "append-hangs"          session_append and session_append_batch never return (a server's
//                           call that no cancellation can stop).
// Built with EFT_FIXTURE_ABI_1_0 (Tests/Fixtures/ABI10) it is a plugin of ABI 1.0: minor 0, a
// table that ends before `session_append_batch`.
// The toy model: logit[w] = cos(0.1·w·(1 + h)) where h is a running hash of the tokens held.
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eft_backend.h"

#define VOCAB 64
#define CONTEXT 128

enum defect { GOOD, BATCH_MISMATCH, TRUNCATE_KEEPS_STATE, BATCH_CROSSTALK, TRUNCATE_CRASHES, BATCH_HANGS, APPEND_HANGS,
              EOS_LIST, EOS_LIST_BAD };
struct eft_model { enum defect defect; };
struct eft_session { const eft_model *model; int32_t tokens[CONTEXT]; size_t length; double hash; };
struct eft_error { eft_status status; char message[128]; };

static eft_status fail(eft_error **error, eft_status status, const char *message) {
  eft_error *e = malloc(sizeof *e);
  if (e) {
    e->status = status;
    snprintf(e->message, sizeof e->message, "%s", message);
  }
  if (error) *error = e; else free(e);
  return status;
}

static double hash_of(const int32_t *tokens, size_t n) {
  double h = 0;
  for (size_t i = 0; i < n; i++) h = fmod(h * 1.37 + tokens[i] * 0.01, 1.0);
  return h;
}

static void write_logits(double h, float *out) {
  for (int w = 0; w < VOCAB; w++) out[w] = (float)cos(0.1 * w * (1 + h));
}

static eft_status model_open(const char *path, const uint8_t *options, size_t options_len, eft_model **out, eft_error **error) {
  (void)options; (void)options_len;
  eft_model *m = malloc(sizeof *m);
  if (!m) return fail(error, EFT_RESOURCE_EXHAUSTED, "out of memory");
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  if (strcmp(name, "good") == 0) m->defect = GOOD;
  else if (strcmp(name, "batch-mismatch") == 0) m->defect = BATCH_MISMATCH;
  else if (strcmp(name, "truncate-keeps-state") == 0) m->defect = TRUNCATE_KEEPS_STATE;
  else if (strcmp(name, "batch-crosstalk") == 0) m->defect = BATCH_CROSSTALK;
  else if (strcmp(name, "truncate-crashes") == 0) m->defect = TRUNCATE_CRASHES;
  else if (strcmp(name, "batch-hangs") == 0) m->defect = BATCH_HANGS;
  else if (strcmp(name, "append-hangs") == 0) m->defect = APPEND_HANGS;
  else if (strcmp(name, "eos-list") == 0) m->defect = EOS_LIST;          /* not a defect: EOS 5 and 6 */
  else if (strcmp(name, "eos-list-bad") == 0) m->defect = EOS_LIST_BAD;  /* lists 7 and 99 (≥ vocab) */
  else {
    free(m);
    return fail(error, EFT_NOT_FOUND, "model path must be good, batch-mismatch, truncate-keeps-state, batch-crosstalk, truncate-crashes, batch-hangs or append-hangs");
  }
  *out = m;
  return EFT_OK;
}

static void model_free(eft_model *m) { free(m); }

static eft_status model_describe(const eft_model *m, eft_model_info *info, eft_error **error) {
  (void)error;
  info->vocab_size = VOCAB;
  info->context_length = CONTEXT;
  info->bos_token_id = -1;
  info->eos_token_id = -1;
  info->architecture = "toy";
  info->tokenizer_fingerprint = "";
  static const int32_t eos_good[] = {5, 6}, eos_bad[] = {7, 99};
  if ((m->defect == EOS_LIST || m->defect == EOS_LIST_BAD) &&
      info->struct_size >= offsetof(eft_model_info, eos_token_ids) + sizeof info->eos_token_ids) {
    info->eos_token_id = m->defect == EOS_LIST ? 5 : 7;
    info->n_eos_token_ids = 2;
    info->eos_token_ids = m->defect == EOS_LIST ? eos_good : eos_bad;
  }
  return EFT_OK;
}

static eft_status session_new(eft_model *m, eft_session **out, eft_error **error) {
  eft_session *s = calloc(1, sizeof *s);
  if (!s) return fail(error, EFT_RESOURCE_EXHAUSTED, "out of memory");
  s->model = m;
  *out = s;
  return EFT_OK;
}

static void session_free(eft_session *s) { free(s); }

static eft_status session_append(eft_session *s, const int32_t *tokens, size_t n, eft_logits_mode mode, float *logits, eft_error **error) {
  while (s->model->defect == APPEND_HANGS) pause();
  if (n == 0) return fail(error, EFT_INVALID_ARGUMENT, "no tokens");
  for (size_t i = 0; i < n; i++) {
    if (tokens[i] < 0 || tokens[i] >= VOCAB) return fail(error, EFT_INVALID_ARGUMENT, "token out of range");
  }
  if (n > CONTEXT - s->length) return fail(error, EFT_OUT_OF_RANGE, "context full");
  for (size_t i = 0; i < n; i++) {
    s->tokens[s->length++] = tokens[i];
    s->hash = s->model->defect == TRUNCATE_KEEPS_STATE ? fmod(s->hash * 1.37 + tokens[i] * 0.01, 1.0) : hash_of(s->tokens, s->length);
    double h = s->hash + (s->model->defect == BATCH_MISMATCH && n > 1 ? 0.05 : 0);
    if (mode == EFT_LOGITS_ALL) write_logits(h, logits + i * VOCAB);
    if (mode == EFT_LOGITS_LAST && i == n - 1) write_logits(h, logits);
  }
  return EFT_OK;
}

static eft_status session_truncate(eft_session *s, size_t n, eft_error **error) {
  if (n > s->length) return fail(error, EFT_OUT_OF_RANGE, "past the end");
  if (s->model->defect == TRUNCATE_CRASHES) {
    volatile int *nowhere = NULL;
    *nowhere = 1;
  }
  s->length = n;  // the defective variant keeps s->hash as it was
  if (s->model->defect != TRUNCATE_KEEPS_STATE) s->hash = hash_of(s->tokens, n);
  return EFT_OK;
}

static size_t session_length(const eft_session *s) { return s->length; }
static const char *error_message(const eft_error *e) { return e->message; }
static eft_status error_status(const eft_error *e) { return e->status; }
static void error_free(eft_error *e) { free(e); }

#ifndef EFT_FIXTURE_ABI_1_0
// All or nothing: every append is checked before any runs.
static eft_status session_append_batch(eft_model *m, const eft_append *appends, size_t n, size_t append_size, eft_error **error) {
  while (m->defect == BATCH_HANGS || m->defect == APPEND_HANGS) pause();
  for (size_t i = 0; i < n; i++) {
    const eft_append *a = (const eft_append *)((const char *)appends + i * append_size);
    if (!a->session || a->session->model != m) return fail(error, EFT_INVALID_ARGUMENT, "a session of another model");
    if (a->n_tokens == 0 || a->n_tokens > CONTEXT - a->session->length) return fail(error, EFT_OUT_OF_RANGE, "bad length");
    for (size_t t = 0; t < a->n_tokens; t++) {
      if (a->tokens[t] < 0 || a->tokens[t] >= VOCAB) return fail(error, EFT_INVALID_ARGUMENT, "token out of range");
    }
    for (size_t j = 0; j < i; j++) {
      if (((const eft_append *)((const char *)appends + j * append_size))->session == a->session) {
        return fail(error, EFT_INVALID_ARGUMENT, "a session twice");
      }
    }
  }
  for (size_t i = 0; i < n; i++) {
    const eft_append *a = (const eft_append *)((const char *)appends + i * append_size);
    session_append(a->session, a->tokens, a->n_tokens, a->mode, a->logits, error);
    if (m->defect == BATCH_CROSSTALK && i > 0 && a->mode != EFT_LOGITS_NONE) a->logits[0] += 0.5f;
  }
  return EFT_OK;
}
#endif

static const eft_backend table = {
#ifdef EFT_FIXTURE_ABI_1_0
  .abi_major = EFT_ABI_VERSION_MAJOR, .abi_minor = 0, .struct_size = offsetof(eft_backend, session_append_batch),
#else
  .abi_major = EFT_ABI_VERSION_MAJOR, .abi_minor = EFT_ABI_VERSION_MINOR, .struct_size = sizeof(eft_backend),
  .session_append_batch = session_append_batch,
#endif
  .name = "broken", .version = "0",
  .model_open = model_open, .model_free = model_free, .model_describe = model_describe,
  .session_new = session_new, .session_free = session_free, .session_append = session_append,
  .session_truncate = session_truncate, .session_length = session_length,
  .error_message = error_message, .error_status = error_status, .error_free = error_free,
};

const eft_backend *eft_backend_entry(void) { return &table; }

/*
 * eft_backend.h — the C ABI between the EFTRuntime host and a backend plugin.
 *
 * A backend is a shared library that exports one symbol, `eft_backend_entry`, returning a pointer
 * to a constant function table (`eft_backend`). Through the table the host opens models (a path
 * plus serialized protobuf options), asks them to describe themselves, and runs sessions: a
 * session holds the state of one token sequence (a KV cache), appends tokens and returns
 * next-token logits, and can be truncated (rolled back) to a shorter prefix.
 *
 * VERSIONING
 *   The table starts with `abi_major`, `abi_minor` and `struct_size`.
 *   - A minor change appends a slot to the end of a struct, or adds a status code or a logits
 *     mode. New slots may be NULL in plugins that predate them. The host accepts a plugin whose
 *     major equals the host's and whose minor is ≤ the host's, and reads only the slots that fit
 *     in the plugin's `struct_size`.
 *   - Minor versions so far: 1.0 the first table; 1.1 appended `session_append_batch`; 1.2
 *     appended `session_bytes_per_token` to `eft_model_info` (0 from older plugins); 1.3
 *     appended `n_eos_token_ids` and `eos_token_ids` to `eft_model_info` (0 and NULL from older
 *     plugins: the host then uses `eos_token_id` alone); 1.4 added the statuses EFT_UNAVAILABLE and
 *     EFT_DEADLINE_EXCEEDED (a host of an older minor reads them as EFT_INTERNAL) and appended
 *     `flags` to `eft_model_info` (0 from older plugins); 1.5 appended `session_set_deadline`.
 *   - Anything else (removing, reordering or retyping a slot; changing a meaning) is a major
 *     change, and the host refuses plugins of another major.
 *
 * OWNERSHIP
 *   - Handles (`eft_model`, `eft_session`, `eft_error`) are opaque and owned by the plugin; each
 *     creating call has a matching free. Freeing NULL is a no-op.
 *   - The caller owns every buffer it passes (tokens in, logits out) and keeps it valid for the
 *     duration of the call only.
 *   - Strings inside `eft_model_info` are owned by the model and stay valid until `model_free`.
 *
 * ERRORS
 *   Every fallible call returns an `eft_status`. On failure it may store a new error object in
 *   `*error` (when `error` is not NULL); the caller reads it with `error_message` and releases it
 *   with `error_free`. On success `*error` is left untouched. Messages say what went wrong and
 *   where (file, tensor, token index), in English, without a trailing newline.
 *
 * THREADING
 *   The table and a model are shared: every function taking a model may be called from several
 *   threads at once. A session is used by one thread at a time (the host serialises calls on a
 *   session); different sessions may be used concurrently from different threads.
 */
#ifndef EFT_BACKEND_H
#define EFT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EFT_ABI_VERSION_MAJOR 1
#define EFT_ABI_VERSION_MINOR 5

/* The name of the one symbol every plugin exports. */
#define EFT_BACKEND_ENTRY_SYMBOL "eft_backend_entry"

/* Status codes. One vocabulary, shared with the host's Swift error codes and the wire protocol. */
typedef enum eft_status {
  EFT_OK = 0,
  EFT_INVALID_ARGUMENT = 1,  /* a bad parameter: token id out of range, empty append, … */
  EFT_NOT_FOUND = 2,         /* a file or tensor that does not exist */
  EFT_DATA_LOSS = 3,         /* a model file that is truncated, corrupt or inconsistent */
  EFT_OUT_OF_RANGE = 4,      /* past the context length, truncating past the end */
  EFT_RESOURCE_EXHAUSTED = 5,/* out of memory */
  EFT_UNIMPLEMENTED = 6,     /* an option or architecture this backend does not support */
  EFT_INTERNAL = 7,          /* a bug in the backend */
  /* ---- ABI 1.4 ---- */
  EFT_UNAVAILABLE = 8,       /* a service the backend needs is unreachable (a remote model's server) */
  EFT_DEADLINE_EXCEEDED = 9  /* an answer the backend waited for did not come in time */
} eft_status;

/* Which logits `session_append` writes. */
typedef enum eft_logits_mode {
  EFT_LOGITS_NONE = 0, /* write nothing; `logits` may be NULL */
  EFT_LOGITS_LAST = 1, /* the next-token logits after the last appended token: vocab_size floats */
  EFT_LOGITS_ALL = 2   /* after each appended token, in order: n_tokens × vocab_size floats */
} eft_logits_mode;

typedef struct eft_model eft_model;
typedef struct eft_session eft_session;
typedef struct eft_error eft_error;

/* One session's part of a batched append (ABI 1.1, `session_append_batch`): the arguments of one
 * `session_append` call. The host fills an array of these; the plugin reads them. */
typedef struct eft_append {
  eft_session *session;   /* a session of the model the batch is for; each at most once per batch */
  const int32_t *tokens;  /* n_tokens >= 1 ids, each in [0, vocab_size) */
  size_t n_tokens;
  eft_logits_mode mode;   /* which logits to write, as for session_append */
  float *logits;          /* sized for `mode` as for session_append; NULL for EFT_LOGITS_NONE */
} eft_append;

/* What a model says about itself. The caller sets `struct_size` before calling `model_describe`;
 * the plugin fills only the fields that fit. */
typedef struct eft_model_info {
  size_t struct_size;
  /* Rows of the output head: the number of logits per position. May exceed the tokenizer's
   * vocabulary (padded heads); the host ignores the extra rows. */
  int32_t vocab_size;
  /* The longest sequence a session can hold, in tokens. */
  int32_t context_length;
  /* Beginning- and end-of-sequence token ids; -1 when the model has none. With several EOS ids
   * (below), eos_token_id is the first of them. */
  int32_t bos_token_id;
  int32_t eos_token_id;
  /* e.g. "llama", "gpt2", "bigram". Never NULL. */
  const char *architecture;
  /* Identifies the tokenizer the model was trained with (e.g. a hash of tokenizer.json's
   * vocabulary and merges); "" when unknown. Informational: the host compares tokenizers itself. */
  const char *tokenizer_fingerprint;
  /* (1.2) Memory a session may hold per token it holds, in bytes, the slack of its growth policy
   * included (a cache that grows by doubling reports twice its bytes per token); 0 when unknown.
   * The host budgets a request's memory with it before admitting it. */
  uint64_t session_bytes_per_token;
  /* (1.3) Every token id that ends a generation, e.g. Llama-3-Instruct's end-of-text and
   * end-of-turn (generation_config.json's eos_token_id list): `n_eos_token_ids` ids, each in
   * [0, vocab_size), eos_token_id first, in an array the model owns (valid until model_free).
   * 0 and NULL when the model has no EOS, or only eos_token_id to report. */
  size_t n_eos_token_ids;
  const int32_t *eos_token_ids;
  /* (1.4) EFT_MODEL_* bits; 0 from older plugins. */
  uint32_t flags;
} eft_model_info;

/* (1.4) `eft_model_info.flags`: the model's calls wait on another machine (a remote model's
 * server), not on this one's cores, so the host runs them alongside its other models' calls in a
 * step instead of one after another. */
#define EFT_MODEL_REMOTE 1u

/* The function table. Slots marked "required" are non-NULL in every plugin of this major. */
typedef struct eft_backend {
  uint32_t abi_major;  /* EFT_ABI_VERSION_MAJOR the plugin was built against */
  uint32_t abi_minor;  /* EFT_ABI_VERSION_MINOR the plugin was built against */
  size_t struct_size;  /* sizeof(eft_backend) as the plugin was built */
  const char *name;    /* the backend's name, e.g. "cpu". Never NULL. Static storage. */
  const char *version; /* the backend's own version, free-form. Never NULL. Static storage. */

  /* Required. Opens the model at `path` (a NUL-terminated file or directory path) with `options`,
   * the serialized bytes of a protobuf message the backend defines (`options_len` may be 0, and
   * `options` NULL then). On success stores a new model in `*out`; free it with `model_free`.
   * Thread-safe. */
  eft_status (*model_open)(const char *path, const uint8_t *options, size_t options_len,
                           eft_model **out, eft_error **error);

  /* Required. Frees a model. Every session of the model must have been freed before. */
  void (*model_free)(eft_model *model);

  /* Required. Fills `info` (whose `struct_size` the caller set). Thread-safe. */
  eft_status (*model_describe)(const eft_model *model, eft_model_info *info, eft_error **error);

  /* Required. Creates an empty session (no tokens). The model must outlive it. Thread-safe. */
  eft_status (*session_new)(eft_model *model, eft_session **out, eft_error **error);

  /* Required. Frees a session. */
  void (*session_free)(eft_session *session);

  /* Required. Appends `n_tokens` ≥ 1 token ids (each in [0, vocab_size)) to the session and
   * writes logits according to `mode` into `logits`, which the caller sized: vocab_size floats
   * for EFT_LOGITS_LAST, n_tokens × vocab_size for EFT_LOGITS_ALL. On failure the session is
   * unchanged (no token was appended). One thread at a time per session. */
  eft_status (*session_append)(eft_session *session, const int32_t *tokens, size_t n_tokens,
                               eft_logits_mode mode, float *logits, eft_error **error);

  /* Required. Keeps the first `n_tokens` tokens and forgets the rest, so that appending the same
   * tokens again gives the same logits. `n_tokens` greater than the session's length is an
   * EFT_OUT_OF_RANGE error. One thread at a time per session. */
  eft_status (*session_truncate)(eft_session *session, size_t n_tokens, eft_error **error);

  /* Required. The number of tokens the session holds. One thread at a time per session. */
  size_t (*session_length)(const eft_session *session);

  /* Required. The message of an error; valid until `error_free`. Never NULL. */
  const char *(*error_message)(const eft_error *error);

  /* Required. The status code an error was created with. */
  eft_status (*error_status)(const eft_error *error);

  /* Required. Frees an error. */
  void (*error_free)(eft_error *error);

  /* ---- ABI 1.1 ---- */

  /* May be NULL (then the host makes one session_append call per session). Appends to several
   * sessions of `model` in one call, so that a backend can run all of them in one pass over its
   * weights (one matrix product per weight over every appended row): `appends[i]` is what
   * session_append(appends[i].session, …) would get. `append_size` is sizeof(eft_append) as the
   * host was built (a later minor may grow the struct; read only the fields that fit, stepping
   * through the array by `append_size`).
   * Every append's logits must be those its session_append call would write: a session's result
   * must not depend on which other sessions share the batch (ideally bit for bit; the host's
   * `eft backend-check` compares them with its tolerance).
   * All or nothing: on failure no session changes, and the error names the append by index
   * ("append 2: …"); the host then retries the appends one by one to find whose it was.
   * Sessions are used by this call only for its duration (the one-thread-per-session rule holds
   * for each). Thread-safe across calls on distinct sessions. */
  eft_status (*session_append_batch)(eft_model *model, const eft_append *appends, size_t n_appends,
                                     size_t append_size, eft_error **error);

  /* ---- ABI 1.5 ---- */

  /* May be NULL (then the host stops a request that is past its deadline between calls only).
   * The time by which the request the session serves must end, in nanoseconds of
   * CLOCK_MONOTONIC; 0: none. The host sets it after session_new, before the first append, when
   * the request has a deadline (a gRPC client's timeout). A backend whose calls wait on something
   * other than this machine's cores (a remote server, a queue, a device) stops waiting by then,
   * failing the call with EFT_DEADLINE_EXCEEDED (the session unchanged), and may pass the
   * deadline on (the remote backend sends what is left of it with each append). One thread at a
   * time per session, as for session_append. */
  void (*session_set_deadline)(eft_session *session, uint64_t deadline_ns);
} eft_backend;

/* The entry point every plugin exports (name: EFT_BACKEND_ENTRY_SYMBOL). Returns a table in
 * static storage, valid until the library is unloaded; may be called any number of times. */
typedef const eft_backend *(*eft_backend_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* EFT_BACKEND_H */

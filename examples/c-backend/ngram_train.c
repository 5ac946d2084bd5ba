/*
 * ngram-train: counts the n-grams of a tokenized corpus for the n-gram backend.
 *
 *   eft tokenize --tokenizer tokenizer.json corpus.txt | ngram-train -n 3 -V 1024 -b 1 -e 2 > model.ngram
 *
 * Reads one document per line as token ids separated by spaces, wraps each in BOS … EOS, and
 * writes every distinct n-gram of orders 1 … N that ends on a predicted token (not the BOS) with
 * its count, in the format ngram_backend.c reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ORDER 6

typedef struct {
  int ids[MAX_ORDER];
  int n;
} gram;

static int compare(const void *x, const void *y) {
  const gram *a = x, *b = y;
  if (a->n != b->n) return a->n < b->n ? -1 : 1;
  for (int i = 0; i < a->n; i++) {
    if (a->ids[i] != b->ids[i]) return a->ids[i] < b->ids[i] ? -1 : 1;
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: ngram-train -n ORDER -V VOCAB [-b BOS] [-e EOS] [-c CONTEXT] < ids.txt > model.ngram\n");
  exit(2);
}

int main(int argc, char **argv) {
  int order = 3, vocab = 0, bos = -1, eos = -1, context = 4096;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    int value = atoi(argv[i + 1]);
    if (strcmp(argv[i], "-n") == 0) order = value;
    else if (strcmp(argv[i], "-V") == 0) vocab = value;
    else if (strcmp(argv[i], "-b") == 0) bos = value;
    else if (strcmp(argv[i], "-e") == 0) eos = value;
    else if (strcmp(argv[i], "-c") == 0) context = value;
    else usage();
    i++;
  }
  if (order < 1 || order > MAX_ORDER || vocab <= 0) usage();

  size_t n = 0, capacity = 1 << 16, documents = 0;
  gram *grams = malloc(capacity * sizeof *grams);
  int *doc = NULL;
  size_t doc_capacity = 0;
  char *line = NULL;
  size_t line_capacity = 0;
  while (getline(&line, &line_capacity, stdin) > 0) {
    size_t length = 0;
    char *cursor = line, *end;
    if (bos >= 0) {
      if (length == doc_capacity) doc = realloc(doc, (doc_capacity = doc_capacity * 2 + 64) * sizeof *doc);
      doc[length++] = bos;
    }
    for (;; cursor = end) {
      long id = strtol(cursor, &end, 10);
      if (end == cursor) break;
      if (id < 0 || id >= vocab) {
        fprintf(stderr, "ngram-train: token id %ld is outside [0, %d)\n", id, vocab);
        return 1;
      }
      if (length == doc_capacity) doc = realloc(doc, (doc_capacity = doc_capacity * 2 + 64) * sizeof *doc);
      doc[length++] = (int)id;
    }
    if (length <= (bos >= 0 ? 1u : 0u)) continue;  /* an empty line */
    if (eos >= 0) {
      if (length == doc_capacity) doc = realloc(doc, (doc_capacity = doc_capacity * 2 + 64) * sizeof *doc);
      doc[length++] = eos;
    }
    documents++;
    for (size_t i = bos >= 0 ? 1 : 0; i < length; i++) {
      for (int k = 1; k <= order && (size_t)k <= i + 1; k++) {
        if (n == capacity) grams = realloc(grams, (capacity *= 2) * sizeof *grams);
        if (!grams || !doc) {
          fprintf(stderr, "ngram-train: out of memory\n");
          return 1;
        }
        gram *g = &grams[n++];
        g->n = k;
        memcpy(g->ids, doc + i + 1 - k, (size_t)k * sizeof(int));
      }
    }
  }
  qsort(grams, n, sizeof *grams, compare);
  size_t distinct = 0;
  for (size_t i = 0; i < n; i++) distinct += i == 0 || compare(&grams[i], &grams[i - 1]) != 0;

  printf("eft-ngram 1\n# %zu documents, %zu n-grams of orders 1-%d\n", documents, n, order);
  printf("vocab %d\norder %d\nbos %d\neos %d\ncontext %d\ncounts\n", vocab, order, bos, eos, context);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && compare(&grams[j], &grams[i]) == 0) j++;
    printf("%zu", j - i);
    for (int k = 0; k < grams[i].n; k++) printf(" %d", grams[i].ids[k]);
    printf("\n");
    i = j;
  }
  printf("end %zu\n", distinct);
  fprintf(stderr, "ngram-train: %zu documents, %zu distinct n-grams\n", documents, distinct);
  free(grams);
  free(doc);
  free(line);
  return 0;
}

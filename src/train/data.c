/* data.c — corpus -> token files, and token files -> batches (format and contracts in data.h). */
#include "train/data.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/rng.h"
#include "io/fsutil.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "moec token files are little-endian; this code writes and maps them in host order"
#endif

/* A corpus larger than this is refused by moec_data_prepare (it is read whole into memory). */
#define MOEC_DATA_MAX_TEXT_BYTES ((size_t)16 << 30)

struct moec_token_shard {
    void *map;
    size_t map_len;
    const int32_t *tokens;
    int64_t n;
};

/* moec's one generator lives in core/rng.h; this is its exported name for data-pipeline callers. */
uint64_t moec_rng_next(uint64_t *state) { return moec_rand_u64(state); }

/* ------------------------------------------------------------------------------------------------------------ */
/* Preparing. */

static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Where val starts: the first line start at or after the target offset (else the last one before it) whose
 * first byte is not whitespace. Such a position is always a pre-token boundary ("\n" followed by a non-space
 * ends a pre-token), so cutting there changes no token near the cut. Returns 0 if there is none. */
static size_t split_point(const char *text, size_t len, double val_fraction) {
    size_t target = (size_t)((double)len * (1.0 - val_fraction));
    if (target < 1) target = 1;
    for (size_t p = target; p < len; p++)
        if (text[p - 1] == '\n' && !is_space((unsigned char)text[p])) return p;
    for (size_t p = target < len ? target : len - 1; p >= 1; p--)
        if (text[p - 1] == '\n' && !is_space((unsigned char)text[p])) return p;
    return 0;
}

static moec_status write_tokens(const char *path, const int32_t *ids, int64_t n, int vocab_size) {
    unsigned char h[MOEC_TOKFILE_HEADER_BYTES] = {0};
    uint32_t version = MOEC_TOKFILE_VERSION, width = 4, vocab = (uint32_t)vocab_size;
    memcpy(h, MOEC_TOKFILE_MAGIC, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &width, 4);
    memcpy(h + 16, &n, 8);
    memcpy(h + 24, &vocab, 4);
    moec_atomic_file *f;
    MOEC_TRY(moec_atomic_open(&f, path));
    moec_status s = moec_atomic_write(f, h, sizeof h);
    if (s == MOEC_OK) s = moec_atomic_write(f, ids, (size_t)n * sizeof *ids);
    if (s != MOEC_OK) {
        moec_atomic_abort(f);
        return s;
    }
    return moec_atomic_commit(f);
}

moec_status moec_data_prepare(const char *text_path, const moec_tokenizer *t, const char *out_dir,
                              double val_fraction, int64_t *n_train, int64_t *n_val) {
    *n_train = *n_val = 0;
    if (!(val_fraction > 0.0 && val_fraction < 1.0)) /* also catches NaN */
        return MOEC_ERR(MOEC_ERR_ARG, "data_prepare: val_fraction %g must be strictly between 0 and 1", val_fraction);
    char *text;
    size_t len;
    MOEC_TRY(moec_read_file(text_path, &text, &len, MOEC_DATA_MAX_TEXT_BYTES));
    moec_status s = MOEC_OK;
    size_t p = 0;
    if (len == 0) s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: the corpus is empty", text_path);
    else if ((p = split_point(text, len, val_fraction)) == 0)
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: no line break to split training from validation text at (the corpus "
                     "needs several lines)", text_path);
    int32_t *train = NULL, *val = NULL;
    int64_t nt = 0, nv = 0;
    if (s == MOEC_OK) s = moec_tokenizer_encode(t, text, p, &train, &nt);
    if (s == MOEC_OK) s = moec_tokenizer_encode(t, text + p, len - p, &val, &nv);
    free(text);
    if (s == MOEC_OK && (nt < 2 || nv < 2))
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: corpus too small: %lld training and %lld validation tokens (need >= 2 each)",
                     text_path, (long long)nt, (long long)nv);
    if (s == MOEC_OK) s = moec_mkdir_p(out_dir);
    size_t plen = strlen(out_dir) + 16;
    char *path = s == MOEC_OK ? malloc(plen) : NULL;
    if (s == MOEC_OK && !path) s = MOEC_ERR(MOEC_ERR_NOMEM, "data_prepare: out of memory");
    if (s == MOEC_OK) {
        snprintf(path, plen, "%s/train.bin", out_dir);
        s = write_tokens(path, train, nt, moec_tokenizer_vocab_size(t));
    }
    if (s == MOEC_OK) {
        snprintf(path, plen, "%s/val.bin", out_dir);
        s = write_tokens(path, val, nv, moec_tokenizer_vocab_size(t));
    }
    free(path);
    free(train);
    free(val);
    if (s != MOEC_OK) return s;
    *n_train = nt;
    *n_val = nv;
    return MOEC_OK;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Shards. */

moec_status moec_shard_open(moec_token_shard **out, const char *path, int vocab_size) {
    *out = NULL;
    if (vocab_size <= 0) return MOEC_ERR(MOEC_ERR_ARG, "shard_open: vocab_size %d must be positive", vocab_size);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return MOEC_ERR(MOEC_ERR_IO, "cannot open token file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        moec_status s = MOEC_ERR(MOEC_ERR_IO, "cannot stat token file %s: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    if (st.st_size < MOEC_TOKFILE_HEADER_BYTES) {
        close(fd);
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %lld bytes is shorter than the %d-byte token file header", path,
                        (long long)st.st_size, MOEC_TOKFILE_HEADER_BYTES);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping stays valid */
    if (map == MAP_FAILED) return MOEC_ERR(MOEC_ERR_IO, "cannot mmap token file %s: %s", path, strerror(errno));

    const unsigned char *h = map;
    uint32_t version, width, file_vocab;
    int64_t n;
    memcpy(&version, h + 8, 4);
    memcpy(&width, h + 12, 4);
    memcpy(&n, h + 16, 8);
    memcpy(&file_vocab, h + 24, 4);
    moec_status s = MOEC_OK;
    if (memcmp(h, MOEC_TOKFILE_MAGIC, 8) != 0)
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: not a moec token file (magic is not \"%s\")", path, MOEC_TOKFILE_MAGIC);
    else if (version != MOEC_TOKFILE_VERSION)
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: token file version %u, this moec reads version %d", path, version,
                     MOEC_TOKFILE_VERSION);
    else if (width != 4)
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: %u bytes per token, expected 4", path, width);
    else if (n < 2 || (uint64_t)n > (size - MOEC_TOKFILE_HEADER_BYTES) / 4 + 1 ||
             size != MOEC_TOKFILE_HEADER_BYTES + (size_t)n * 4)
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: header says %lld tokens but the file's %zu bytes hold %.2f", path,
                     (long long)n, size, (double)(size - MOEC_TOKFILE_HEADER_BYTES) / 4.0);
    else if (file_vocab == 0 || file_vocab > (uint32_t)vocab_size)
        s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: written by a tokenizer of %u ids; the model's vocabulary has %d", path,
                     file_vocab, vocab_size);
    const int32_t *tok = (const int32_t *)(h + MOEC_TOKFILE_HEADER_BYTES);
    for (int64_t i = 0; s == MOEC_OK && i < n; i++)
        if (tok[i] < 0 || (uint32_t)tok[i] >= file_vocab)
            s = MOEC_ERR(MOEC_ERR_FORMAT, "%s: token %lld has id %d, outside the vocabulary [0, %u)", path, (long long)i,
                         tok[i], file_vocab);
    moec_token_shard *sh = s == MOEC_OK ? malloc(sizeof *sh) : NULL;
    if (s == MOEC_OK && !sh) s = MOEC_ERR(MOEC_ERR_NOMEM, "shard_open: out of memory");
    if (s != MOEC_OK) {
        munmap(map, size);
        return s;
    }
    /* Training reads windows at random: tell the kernel not to read ahead sequentially. */
    madvise(map, size, MADV_RANDOM);
    *sh = (moec_token_shard){.map = map, .map_len = size, .tokens = tok, .n = n};
    *out = sh;
    return MOEC_OK;
}

int64_t moec_shard_len(const moec_token_shard *s) { return s->n; }
const int32_t *moec_shard_tokens(const moec_token_shard *s) { return s->tokens; }

void moec_shard_close(moec_token_shard *s) {
    if (!s) return;
    munmap(s->map, s->map_len);
    free(s);
}

/* Copy the window starting at token `start` into row b; indices wrap modulo len so a shard shorter than S+1
 * (a caller error) still never reads out of bounds. */
static void copy_window(const moec_token_shard *s, int64_t start, int S, int32_t *in_row, int32_t *tgt_row) {
    if (start + S < s->n) {
        memcpy(in_row, s->tokens + start, (size_t)S * sizeof *in_row);
        memcpy(tgt_row, s->tokens + start + 1, (size_t)S * sizeof *tgt_row);
        return;
    }
    for (int j = 0; j < S; j++) {
        in_row[j] = s->tokens[(start + j) % s->n];
        tgt_row[j] = s->tokens[(start + j + 1) % s->n];
    }
}

void moec_shard_sample_batch(const moec_token_shard *s, uint64_t *rng_state, int B, int S, int32_t *inputs,
                             int32_t *targets) {
    /* Modulo bias is below (len - S) / 2^64: irrelevant for any real shard. */
    uint64_t n_starts = s->n > S ? (uint64_t)(s->n - S) : 1;
    for (int b = 0; b < B; b++) {
        int64_t start = (int64_t)(moec_rng_next(rng_state) % n_starts);
        copy_window(s, start, S, inputs + (size_t)b * S, targets + (size_t)b * S);
    }
}

int64_t moec_shard_eval_windows(const moec_token_shard *s, int S) {
    int64_t w = S > 0 ? (s->n - 1) / S : 0;
    return w > 0 ? w : 1;
}

void moec_shard_eval_batch(const moec_token_shard *s, int64_t index, int B, int S, int32_t *inputs,
                           int32_t *targets) {
    uint64_t nw = (uint64_t)moec_shard_eval_windows(s, S);
    for (int b = 0; b < B; b++) {
        uint64_t w = ((uint64_t)index * (uint64_t)B + (uint64_t)b) % nw;
        copy_window(s, (int64_t)(w * (uint64_t)S), S, inputs + (size_t)b * S, targets + (size_t)b * S);
    }
}

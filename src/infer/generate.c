/* generate.c — continuous-batching generation loop (see generate.h). */
#include "infer/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer/stop.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

moec_generate_opts moec_generate_opts_default(void) {
    moec_generate_opts o;
    memset(&o, 0, sizeof o);
    o.sampling = moec_sampler_params_default();
    o.max_tokens = 128;
    o.stop_at_eos = 1;
    o.add_bos = 1;
    o.prefill_block = 256;
    o.batch = 8;
    o.kv = MOEC_KV_F16;
    return o;
}

typedef struct {
    int prompt;                  /* index, -1 when the slot is free */
    int32_t *ids;                /* prompt then generated tokens */
    int64_t n_prompt, n_ids, n_fed;
    moec_sampler sampler;
    moec_stop stop;
    char *out;                   /* everything emitted */
    size_t out_len, out_cap, fed_bytes;
    int64_t decode_from;         /* first id decoded: the last prompt token (for its context), or n_prompt */
    size_t skip_bytes;           /* bytes of decode(ids[decode_from .. n_prompt)) to drop */
} seq;

static moec_status append_out(seq *s, const char *p, size_t n) {
    if (s->out_len + n + 1 > s->out_cap) {
        size_t cap = (s->out_len + n + 1) * 2;
        char *o = realloc(s->out, cap);
        if (!o) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
        s->out = o;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
    s->out[s->out_len] = 0;
    return MOEC_OK;
}

static void emit(moec_gen_callback cb, void *ctx, seq *s, const char *p, size_t n) {
    if (n == 0) return;
    if (append_out(s, p, n) != MOEC_OK) return;
    if (cb) {
        moec_gen_event ev = {.kind = MOEC_GEN_TEXT, .index = s->prompt, .text = p, .len = n};
        cb(ctx, &ev);
    }
}

/* Decode the generated ids, feed the newly stable bytes to the stop matcher, emit what it releases. final: the
 * sequence ends, so nothing is held back any more. Returns 1 if a stop string completed. */
static int advance_text(const moec_tokenizer *tok, seq *s, int final, moec_gen_callback cb, void *ctx,
                        moec_status *st) {
    char *text = NULL;
    size_t len = 0;
    *st = moec_tokenizer_decode(tok, s->ids + s->decode_from, s->n_ids - s->decode_from, &text, &len);
    if (*st != MOEC_OK) return 0;
    if (s->skip_bytes > len) s->skip_bytes = len;
    memmove(text, text + s->skip_bytes, len - s->skip_bytes + 1);
    len -= s->skip_bytes;
    size_t stable = len;
    if (!final) /* an unfinished byte sequence decodes as U+FFFD for now; wait for the next token */
        while (stable >= 3 && memcmp(text + stable - 3, "\xEF\xBF\xBD", 3) == 0) stable -= 3;
    int stopped = 0;
    if (stable > s->fed_bytes) {
        const char *e;
        size_t el;
        *st = moec_stop_feed(&s->stop, text + s->fed_bytes, stable - s->fed_bytes, &e, &el, &stopped);
        if (*st == MOEC_OK) emit(cb, ctx, s, e, el);
        s->fed_bytes = stable;
    }
    free(text);
    return stopped;
}

/* A SentencePiece decoder strips the leading space of the first token it sees, which is right after BOS ("Once
 * upon", as llama2.c prints) but wrong for a continuation (" She" after "Lily."). So a continuation is decoded
 * together with the last prompt token and that token's own text is dropped. Byte-level BPE decodes by
 * concatenation, where this changes nothing. */
static moec_status set_decode_context(const moec_tokenizer *tok, seq *s, int bos) {
    s->decode_from = s->n_prompt;
    s->skip_bytes = 0;
    if (s->n_prompt == 0 || s->ids[s->n_prompt - 1] == bos) return MOEC_OK;
    char *text;
    size_t len;
    MOEC_TRY(moec_tokenizer_decode(tok, s->ids + s->n_prompt - 1, 1, &text, &len));
    free(text);
    s->decode_from = s->n_prompt - 1;
    s->skip_bytes = len;
    return MOEC_OK;
}

static void finish(moec_gen_callback cb, void *ctx, seq *s, const char *why) {
    if (strcmp(why, "stop") != 0) {
        const char *e;
        size_t el;
        moec_stop_flush(&s->stop, &e, &el);
        emit(cb, ctx, s, e, el);
    }
    if (cb) {
        moec_gen_event ev = {.kind = MOEC_GEN_DONE, .index = s->prompt, .text = s->out ? s->out : "",
                             .len = s->out_len, .finish = why, .prompt_tokens = s->n_prompt,
                             .generated_tokens = s->n_ids - s->n_prompt};
        cb(ctx, &ev);
    }
    moec_sampler_free(&s->sampler);
    moec_stop_free(&s->stop);
    free(s->ids);
    free(s->out);
    memset(s, 0, sizeof *s);
    s->prompt = -1;
}

int moec_generate_bos_id(const moec_infer_model *m, const moec_tokenizer *tok) {
    return m->cfg.bos_id >= 0 ? m->cfg.bos_id : tok ? moec_tokenizer_bos_id(tok) : -1;
}

static int eos_of(const moec_infer_model *m, const moec_tokenizer *tok) {
    if (m->cfg.eos_id >= 0) return m->cfg.eos_id;
    static const char *names[] = {"</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int id = moec_tokenizer_token_id(tok, names[i]);
        if (id >= 0) return id;
    }
    return -1;
}

/* Tokenise every prompt up front, so a prompt that cannot run fails before any output. */
static moec_status tokenize_all(const moec_infer_model *m, const moec_tokenizer *tok, const char *const *prompts,
                                int n, const moec_generate_opts *o, int ctx, int32_t ***ids, int64_t **lens) {
    *ids = calloc((size_t)n, sizeof **ids);
    *lens = calloc((size_t)n, sizeof **lens);
    if (!*ids || !*lens) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    const int bos = o->add_bos ? moec_generate_bos_id(m, tok) : -1;
    for (int i = 0; i < n; i++) {
        int32_t *raw;
        int64_t nr;
        MOEC_TRY(moec_tokenizer_encode(tok, prompts[i], strlen(prompts[i]), &raw, &nr));
        const int64_t total = nr + (bos >= 0);
        /* room for the prompt, the tokens generated (max_tokens) and nothing more: the cache must hold the
         * prompt plus at least one generated token that is fed back */
        int32_t *v = malloc((size_t)(total + o->max_tokens + 1) * sizeof *v);
        if (!v) {
            free(raw);
            return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
        }
        if (bos >= 0) v[0] = bos;
        memcpy(v + (bos >= 0), raw, (size_t)nr * sizeof *v);
        free(raw);
        (*ids)[i] = v;
        (*lens)[i] = total;
        if (total == 0) return MOEC_ERR(MOEC_ERR_ARG, "prompt %d is empty and the model has no BOS token", i);
        if (total >= ctx)
            return MOEC_ERR(MOEC_ERR_ARG, "prompt %d is %lld tokens long; the context holds %d (prompt + at least one "
                            "generated token)", i, (long long)total, ctx);
        for (int64_t t = 0; t < total; t++)
            if (v[t] >= m->cfg.vocab_size)
                return MOEC_ERR(MOEC_ERR_ARG, "prompt %d: token %d is outside the model's vocabulary of %d (tokenizer "
                                "and model disagree)", i, v[t], m->cfg.vocab_size);
    }
    return MOEC_OK;
}

moec_status moec_generate(const moec_infer_model *m, const moec_tokenizer *tok, const char *const *prompts, int n,
                          const moec_generate_opts *o, moec_gen_callback cb, void *cb_ctx, moec_gen_stats *stats) {
    const double t_start = now();
    if (n <= 0) return MOEC_ERR(MOEC_ERR_ARG, "no prompts");
    if (o->max_tokens < 1 || o->prefill_block < 1 || o->batch < 1 || o->ctx < 0)
        return MOEC_ERR(MOEC_ERR_ARG, "max_tokens, prefill_block and batch must be >= 1, ctx >= 0");
    MOEC_TRY(moec_sampler_params_validate(&o->sampling));
    const int ctx = o->ctx ? o->ctx : m->cfg.max_seq, V = m->cfg.vocab_size;
    if (ctx > m->cfg.max_seq) return MOEC_ERR(MOEC_ERR_ARG, "context %d exceeds the model's max_seq %d", ctx, m->cfg.max_seq);
    const int batch = o->batch < n ? o->batch : n;
    const int64_t max_rows = (int64_t)batch * o->prefill_block;
    const int eos = o->stop_at_eos ? eos_of(m, tok) : -1;
    int32_t **pids = NULL;
    int64_t *plens = NULL;
    moec_session ss;
    memset(&ss, 0, sizeof ss);
    seq *seqs = calloc((size_t)batch, sizeof *seqs);
    int32_t *rows_tok = malloc((size_t)max_rows * sizeof *rows_tok), *rows_slot = malloc((size_t)max_rows * 4);
    uint8_t *want = malloc((size_t)max_rows);
    int *want_slot = malloc((size_t)batch * sizeof *want_slot);
    float *logits = moec_alloc_floats((int64_t)batch * V);
    moec_status st = seqs && rows_tok && rows_slot && want && want_slot && logits ? MOEC_OK
                                                                                   : MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    if (st == MOEC_OK) st = tokenize_all(m, tok, prompts, n, o, ctx, &pids, &plens);
    if (st == MOEC_OK) st = moec_session_init(&ss, m, batch, ctx, max_rows, o->kv);
    moec_gen_stats gs = {0};
    int next = 0, active = 0;
    for (int b = 0; b < batch && seqs; b++) seqs[b].prompt = -1;
    while (st == MOEC_OK) {
        /* fill free slots with waiting prompts */
        for (int b = 0; b < batch && next < n && st == MOEC_OK; b++) {
            if (seqs[b].prompt >= 0) continue;
            seq *s = &seqs[b];
            s->prompt = next;
            s->ids = pids[next];
            pids[next] = NULL;
            s->n_prompt = s->n_ids = plens[next];
            next++;
            active++;
            moec_session_reset(&ss, b);
            st = moec_sampler_init_stream(&s->sampler, V, &o->sampling, (uint64_t)s->prompt);
            if (st == MOEC_OK) st = moec_stop_init(&s->stop, o->stops, o->n_stops);
            if (st == MOEC_OK) st = set_decode_context(tok, s, moec_generate_bos_id(m, tok));
        }
        if (st != MOEC_OK || active == 0) break;
        /* one step: prompt blocks and decode rows of every active sequence */
        int64_t nr = 0;
        int n_want = 0, prefill_rows = 0, decode_rows = 0;
        for (int b = 0; b < batch; b++) {
            seq *s = &seqs[b];
            if (s->prompt < 0) continue;
            int64_t take = s->n_ids - s->n_fed;
            if (s->n_fed < s->n_prompt && take > o->prefill_block) take = o->prefill_block;
            for (int64_t i = 0; i < take; i++) {
                rows_tok[nr] = s->ids[s->n_fed + i];
                rows_slot[nr] = b;
                want[nr] = s->n_fed + i == s->n_ids - 1;
                if (want[nr]) want_slot[n_want++] = b;
                nr++;
            }
            if (s->n_fed < s->n_prompt) prefill_rows += (int)take;
            else decode_rows += (int)take;
            s->n_fed += take;
        }
        const double t0 = now();
        st = moec_session_forward(&ss, nr, rows_tok, rows_slot, want, logits);
        const double dt = now() - t0;
        gs.steps++;
        if (prefill_rows && !decode_rows) gs.prefill_seconds += dt;
        if (decode_rows && !prefill_rows) gs.decode_seconds += dt, gs.decode_step_tokens += decode_rows;
        for (int w = 0; w < n_want && st == MOEC_OK; w++) {
            seq *s = &seqs[want_slot[w]];
            int32_t token;
            st = moec_sampler_sample(&s->sampler, logits + (int64_t)w * V, s->ids, s->n_ids, &token);
            if (st != MOEC_OK) break;
            if (token == eos) {
                advance_text(tok, s, 1, cb, cb_ctx, &st);
                gs.generated_tokens += s->n_ids - s->n_prompt;
                finish(cb, cb_ctx, s, "eos");
                active--;
                continue;
            }
            s->ids[s->n_ids++] = token;
            const int64_t n_gen = s->n_ids - s->n_prompt;
            const int full = n_gen >= o->max_tokens, no_room = s->n_ids >= ctx;
            const int stopped = advance_text(tok, s, full || no_room, cb, cb_ctx, &st);
            if (stopped || full || no_room) {
                gs.generated_tokens += n_gen;
                finish(cb, cb_ctx, s, stopped ? "stop" : full ? "length" : "context");
                active--;
            }
        }
    }
    for (int b = 0; seqs && b < batch; b++)
        if (seqs[b].prompt >= 0) {
            moec_sampler_free(&seqs[b].sampler);
            moec_stop_free(&seqs[b].stop);
            free(seqs[b].ids);
            free(seqs[b].out);
        }
    for (int i = 0; pids && i < n; i++) free(pids[i]);
    if (plens)
        for (int i = 0; i < n; i++) gs.prompt_tokens += plens[i];
    free(pids);
    free(plens);
    moec_session_free(&ss);
    free(seqs);
    free(rows_tok);
    free(rows_slot);
    free(want);
    free(want_slot);
    moec_free(logits);
    gs.seconds = now() - t_start;
    if (stats) *stats = gs;
    return st;
}

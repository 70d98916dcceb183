/* demo/retry-with-backoff@1 as a C workflow: GET a URL, retry failures with
 * exponential backoff on logical time.
 *
 * event demo/RetryStart@1 {url: text, max_attempts: nat, base_ns?: nat}
 *   -> a new run: attempts = 1, effect sys/http.request@1 {method: "GET", url}
 *      (max_attempts 0 counts as 1; base_ns defaults to 100 ms)
 * receipt of http.request (ok, or error for a 4xx/5xx answer: payload.status is
 *   read from either): status < 500 -> done; a 5xx status, or a receipt without
 *   a status (connection error, timeout: counted in errors) is a failure: if attempts <
 *   max_attempts, effect sys/timer.set@1 {deliver_at_ns: now + base_ns * 2^(attempts-1)}
 *   (now = ctx.logical_now_ns of the receipt, exponent capped at 40), else gave_up
 * receipt of timer.set (any status) -> attempts + 1, the request again
 * state demo/RetryState@1 {url, max_attempts, base_ns, attempts, last_status?,
 *   errors, done, gave_up, waiting_seq, next_at_ns?}; waiting_seq is the seq
 *   that emitted the effect we wait for: a receipt emitted at another seq
 *   (from an earlier run) changes nothing.
 * Time comes only from ctx (the journaled ingress stamp), never a clock.
 */
#include "../wasm/aos_wf.h"

#define DEFAULT_BASE_NS 100000000ll
#define MAX_SHIFT 40
#define I64_MAX 0x7fffffffffffffffll

typedef struct {
    rd url;            /* encoded text item, copied as is */
    i64 max_attempts, base_ns, attempts, errors, waiting_seq, next_at_ns;
    i64 last_status;   /* -1: none */
    int done, gave_up;
} retry_state;

static int rd_bool(rd r) { return r.p < r.end && *r.p == 0xf5; }

static i64 get_int(rd m, const char *key, i64 dflt) {
    rd f; i64 v;
    if (rd_get(m, key, &f) && rd_int(f, &v)) return v;
    return dflt;
}

static void wr_bool(wr *w, int b) { *w->p++ = b ? 0xf5 : 0xf4; }

static void wr_opt_int(wr *w, i64 v) { if (v < 0) wr_null(w); else wr_int(w, v); }

static void write_state(wr *w, const retry_state *s) {
    wr_text(w, "state");
    wr_head(w, 5, 10);
    wr_text(w, "url"); wr_raw(w, s->url);
    wr_text(w, "max_attempts"); wr_int(w, s->max_attempts);
    wr_text(w, "base_ns"); wr_int(w, s->base_ns);
    wr_text(w, "attempts"); wr_int(w, s->attempts);
    wr_text(w, "last_status"); wr_opt_int(w, s->last_status);
    wr_text(w, "errors"); wr_int(w, s->errors);
    wr_text(w, "done"); wr_bool(w, s->done);
    wr_text(w, "gave_up"); wr_bool(w, s->gave_up);
    wr_text(w, "waiting_seq"); wr_int(w, s->waiting_seq);
    wr_text(w, "next_at_ns"); wr_opt_int(w, s->next_at_ns);
}

static void write_request(wr *w, const retry_state *s) {
    wr_text(w, "effects");
    wr_head(w, 4, 1);
    wr_head(w, 5, 2);
    wr_text(w, "effect"); wr_text(w, "sys/http.request@1");
    wr_text(w, "params");
    wr_head(w, 5, 2);
    wr_text(w, "method"); wr_text(w, "GET");
    wr_text(w, "url"); wr_raw(w, s->url);
}

static void write_timer(wr *w, i64 at) {
    wr_text(w, "effects");
    wr_head(w, 4, 1);
    wr_head(w, 5, 2);
    wr_text(w, "effect"); wr_text(w, "sys/timer.set@1");
    wr_text(w, "params");
    wr_head(w, 5, 1);
    wr_text(w, "deliver_at_ns"); wr_int(w, at);
}

/* now + base * 2^shift, saturating at i64 max */
static i64 backoff_at(i64 now, i64 base, i64 attempts) {
    i64 shift = attempts - 1;
    if (shift < 0) shift = 0;
    if (shift > MAX_SHIFT) shift = MAX_SHIFT;
    if (base > ((I64_MAX - now) >> shift)) return I64_MAX;
    return now + (base << shift);
}

__attribute__((export_name("step"))) i64 step(u8 *in, u32 len) {
    rd r = { in, in + len };
    if (len >= 3 && in[0] == 0xd9 && in[1] == 0xd9 && in[2] == 0xf7) r.p += 3;
    rd state, event, schema, value, ctx, f;
    const u8 *sch; u64 sch_len;
    if (!rd_get(r, "event", &event) || !rd_get(event, "schema", &schema) ||
        !rd_text(schema, &sch, &sch_len) || !rd_get(event, "value", &value) || !rd_get(r, "ctx", &ctx))
        __builtin_trap();
    i64 seq = get_int(ctx, "seq", -1), now = get_int(ctx, "logical_now_ns", -1);
    if (seq < 0 || now < 0) __builtin_trap();

    retry_state s = { 0 };
    s.last_status = -1; s.next_at_ns = -1;
    int have = rd_get(r, "state", &state) && !rd_is_null(state);
    if (have) {
        if (!rd_get(state, "url", &s.url)) __builtin_trap();
        s.max_attempts = get_int(state, "max_attempts", 1);
        s.base_ns = get_int(state, "base_ns", DEFAULT_BASE_NS);
        s.attempts = get_int(state, "attempts", 0);
        s.last_status = get_int(state, "last_status", -1);
        s.errors = get_int(state, "errors", 0);
        s.waiting_seq = get_int(state, "waiting_seq", 0);
        s.next_at_ns = get_int(state, "next_at_ns", -1);
        if (rd_get(state, "done", &f)) s.done = rd_bool(f);
        if (rd_get(state, "gave_up", &f)) s.gave_up = rd_bool(f);
    }

    wr w = wr_new(2 * len + 512);  /* the url may be written twice (state, request) */
    if (str_eq(sch, sch_len, "demo/RetryStart@1")) {
        retry_state n = { 0 };
        if (!rd_get(value, "url", &n.url)) __builtin_trap();
        n.max_attempts = get_int(value, "max_attempts", 1);
        if (n.max_attempts < 1) n.max_attempts = 1;
        n.base_ns = get_int(value, "base_ns", DEFAULT_BASE_NS);
        n.attempts = 1;
        n.last_status = -1;
        n.next_at_ns = -1;
        n.waiting_seq = seq;
        wr_head(&w, 5, 2);
        write_request(&w, &n);
        write_state(&w, &n);
        return wr_done(&w);
    }
    if (!str_eq(sch, sch_len, "sys/EffectReceipt@1") || !have) __builtin_trap();

    rd eff, status, payload;
    const u8 *e, *st; u64 e_len, st_len;
    if (!rd_get(value, "effect", &eff) || !rd_text(eff, &e, &e_len) ||
        !rd_get(value, "status", &status) || !rd_text(status, &st, &st_len))
        __builtin_trap();
    i64 emitted = get_int(value, "emitted_at_seq", -1);
    if (emitted != s.waiting_seq || s.done || s.gave_up) {  /* stale: keep the state */
        wr_head(&w, 5, 1);
        write_state(&w, &s);
        return wr_done(&w);
    }
    if (str_eq(e, e_len, "sys/timer.set@1")) {
        s.attempts += 1;
        s.waiting_seq = seq;
        s.next_at_ns = -1;
        wr_head(&w, 5, 2);
        write_request(&w, &s);
        write_state(&w, &s);
        return wr_done(&w);
    }
    if (!str_eq(e, e_len, "sys/http.request@1")) __builtin_trap();
    /* the http adapter answers 4xx/5xx with an error receipt that still carries
     * the response (payload.status); only a receipt without one (connection
     * error, timeout) is a transport error */
    i64 code = rd_get(value, "payload", &payload) ? get_int(payload, "status", -1) : -1;
    int failed;
    if (code >= 0) {
        s.last_status = code;
        failed = code >= 500;
    } else {
        s.errors += 1;
        failed = 1;
    }
    if (!failed) {
        s.done = 1;
    } else if (s.attempts >= s.max_attempts) {
        s.gave_up = 1;
    } else {
        s.next_at_ns = backoff_at(now, s.base_ns, s.attempts);
        s.waiting_seq = seq;
        wr_head(&w, 5, 2);
        write_timer(&w, s.next_at_ns);
        write_state(&w, &s);
        return wr_done(&w);
    }
    wr_head(&w, 5, 1);
    write_state(&w, &s);
    return wr_done(&w);
}

/* demo/hello-timer@1 as a C workflow: start a timer, count when it fires.
 * state: {started: nat, fired: nat}
 * event demo/TimerStart@1 {delay_ns: nat, key: text}
 *   -> effect sys/timer.set@1 {deliver_at_ns: ctx.logical_now_ns + delay_ns, key}
 * receipt sys/EffectReceipt@1 {status: "ok", payload: {delivered_at_ns, key?}, ...}
 *   -> fired + 1, domain event demo/TimerFired@1 {key}
 * Time comes only from ctx (the journaled ingress stamp), never a clock.
 */
#include "../wasm/aos_wf.h"

__attribute__((export_name("step"))) i64 step(u8 *in, u32 len) {
    rd r = { in, in + len };
    if (len >= 3 && in[0] == 0xd9 && in[1] == 0xd9 && in[2] == 0xf7) r.p += 3;
    rd state, event, schema, value, ctx, f;
    i64 started = 0, fired = 0;
    if (rd_get(r, "state", &state) && !rd_is_null(state)) {
        if (rd_get(state, "started", &f)) rd_int(f, &started);
        if (rd_get(state, "fired", &f)) rd_int(f, &fired);
    }
    const u8 *sch; u64 sch_len;
    if (!rd_get(r, "event", &event) || !rd_get(event, "schema", &schema) ||
        !rd_text(schema, &sch, &sch_len) || !rd_get(event, "value", &value))
        __builtin_trap();

    wr w = wr_new(len + 256);
    if (str_eq(sch, sch_len, "demo/TimerStart@1")) {
        i64 now = 0, delay = 0;
        rd key;
        if (!rd_get(r, "ctx", &ctx) || !rd_get(ctx, "logical_now_ns", &f) || !rd_int(f, &now)) __builtin_trap();
        if (!rd_get(value, "delay_ns", &f) || !rd_int(f, &delay) || !rd_get(value, "key", &key)) __builtin_trap();
        started += 1;
        wr_head(&w, 5, 2);
        wr_text(&w, "effects");
        wr_head(&w, 4, 1);
        wr_head(&w, 5, 2);
        wr_text(&w, "effect"); wr_text(&w, "sys/timer.set@1");
        wr_text(&w, "params");
        wr_head(&w, 5, 2);
        wr_text(&w, "deliver_at_ns"); wr_int(&w, now + delay);
        wr_text(&w, "key"); wr_raw(&w, key);
    } else if (str_eq(sch, sch_len, "sys/EffectReceipt@1")) {
        rd status, payload, key;
        const u8 *st; u64 st_len;
        int ok = rd_get(value, "status", &status) && rd_text(status, &st, &st_len) && str_eq(st, st_len, "ok");
        if (ok) fired += 1;
        wr_head(&w, 5, ok ? 2 : 1);
        if (ok) {
            wr_text(&w, "domain_events");
            wr_head(&w, 4, 1);
            wr_head(&w, 5, 2);
            wr_text(&w, "schema"); wr_text(&w, "demo/TimerFired@1");
            wr_text(&w, "value");
            wr_head(&w, 5, 1);
            wr_text(&w, "key");
            if (rd_get(value, "payload", &payload) && rd_get(payload, "key", &key)) wr_raw(&w, key);
            else wr_null(&w);
        }
    } else {
        __builtin_trap();
    }
    wr_text(&w, "state");
    wr_head(&w, 5, 2);
    wr_text(&w, "started"); wr_int(&w, started);
    wr_text(&w, "fired"); wr_int(&w, fired);
    return wr_done(&w);
}

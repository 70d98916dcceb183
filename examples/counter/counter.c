/* demo/counter@1 as a C workflow.
 * state: {count: int} or null (a count of zero is no state, so a keyed
 * counter's cell disappears when it returns to zero)
 * event: demo/CounterEvent@1 {by: int, id?: text}
 */
#include "../wasm/aos_wf.h"

__attribute__((export_name("step"))) i64 step(u8 *in, u32 len) {
    rd r = { in, in + len };
    if (len >= 3 && in[0] == 0xd9 && in[1] == 0xd9 && in[2] == 0xf7) r.p += 3;
    rd state, cnt, event, value, by_r;
    i64 count = 0, by = 0;
    if (rd_get(r, "state", &state) && !rd_is_null(state) && rd_get(state, "count", &cnt))
        rd_int(cnt, &count);
    if (!rd_get(r, "event", &event) || !rd_get(event, "value", &value) ||
        !rd_get(value, "by", &by_r) || !rd_int(by_r, &by))
        __builtin_trap();
    count += by;
    wr w = wr_new(64);
    wr_head(&w, 5, 1);
    wr_text(&w, "state");
    if (count == 0) {
        wr_null(&w);
    } else {
        wr_head(&w, 5, 1);
        wr_text(&w, "count");
        wr_int(&w, count);
    }
    return wr_done(&w);
}

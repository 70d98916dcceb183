/* A minimal CBOR reader/writer and the AOS step ABI glue for C workflows.
 *
 * No libc: the module must import nothing. The host calls alloc(len) once
 * per step, so alloc resets the bump heap there: buffers of the previous
 * step are dead by then. step(ptr, len) returns (out_ptr << 32) | out_len.
 * Values the host sends are canonical CBOR; the host re-canonicalizes what
 * we write, so the writer only needs to be valid CBOR.
 */
#ifndef AOS_WF_H
#define AOS_WF_H

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

extern u8 __heap_base;
static u8 *aos_heap;

void *memcpy(void *d, const void *s, unsigned long n) {
    u8 *dd = d; const u8 *ss = s;
    while (n--) *dd++ = *ss++;
    return d;
}
void *memset(void *d, int c, unsigned long n) {
    u8 *dd = d;
    while (n--) *dd++ = (u8)c;
    return d;
}

static void *aos_bump(u32 n) {
    u32 top = (u32)(aos_heap + n + 8);
    u32 have = __builtin_wasm_memory_size(0) * 65536u;
    if (top > have) {
        u32 pages = (top - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (unsigned long)-1) __builtin_trap();
    }
    void *p = aos_heap;
    aos_heap += (n + 7u) & ~7u;
    return p;
}

__attribute__((export_name("alloc"))) void *alloc(u32 n) {
    aos_heap = &__heap_base;  /* a new step starts: everything before is dead */
    return aos_bump(n);
}

/* ---- reader ---- */
typedef struct { const u8 *p, *end; } rd;

static int rd_head(rd *r, int *major, u64 *n) {
    if (r->p >= r->end) return 0;
    u8 ib = *r->p++;
    *major = ib >> 5;
    u32 info = ib & 31, len = 0;
    if (info < 24) { *n = info; return 1; }
    if (info == 24) len = 1; else if (info == 25) len = 2;
    else if (info == 26) len = 4; else if (info == 27) len = 8; else return 0;
    if (r->end - r->p < (long)len) return 0;
    u64 v = 0;
    for (u32 i = 0; i < len; i++) v = (v << 8) | *r->p++;
    *n = v;
    return 1;
}

static int rd_skip(rd *r) {
    int m; u64 n;
    if (!rd_head(r, &m, &n)) return 0;
    if (m == 2 || m == 3) { if ((u64)(r->end - r->p) < n) return 0; r->p += n; return 1; }
    if (m == 4) { for (u64 i = 0; i < n; i++) if (!rd_skip(r)) return 0; return 1; }
    if (m == 5) { for (u64 i = 0; i < 2 * n; i++) if (!rd_skip(r)) return 0; return 1; }
    if (m == 6) return rd_skip(r);
    return 1; /* ints, simple values; floats' payload is in n already */
}

static int str_eq(const u8 *a, u64 alen, const char *b) {
    u64 i = 0;
    for (; i < alen; i++) if (b[i] == 0 || a[i] != (u8)b[i]) return 0;
    return b[i] == 0;
}

/* If *r is at a map, find key and leave *out at its value. */
static int rd_get(rd r, const char *key, rd *out) {
    int m; u64 n;
    if (!rd_head(&r, &m, &n) || m != 5) return 0;
    for (u64 i = 0; i < n; i++) {
        int km; u64 kl;
        if (!rd_head(&r, &km, &kl)) return 0;
        if (km == 3 && (u64)(r.end - r.p) >= kl && str_eq(r.p, kl, key)) {
            r.p += kl; *out = r; return 1;
        }
        if (km == 3 || km == 2) r.p += kl;
        if (!rd_skip(&r)) return 0;
    }
    return 0;
}

static int rd_is_null(rd r) { return r.p < r.end && *r.p == 0xf6; }

static int rd_int(rd r, i64 *v) {
    int m; u64 n;
    if (!rd_head(&r, &m, &n)) return 0;
    if (m == 0) { *v = (i64)n; return 1; }
    if (m == 1) { *v = -1 - (i64)n; return 1; }
    return 0;
}

/* Text at r: pointer and length. */
static int rd_text(rd r, const u8 **s, u64 *len) {
    int m; u64 n;
    if (!rd_head(&r, &m, &n) || m != 3) return 0;
    *s = r.p; *len = n; return 1;
}

/* ---- writer ---- */
typedef struct { u8 *start, *p; } wr;

static void wr_head(wr *w, int major, u64 n) {
    u8 m = (u8)(major << 5);
    if (n < 24) { *w->p++ = m | (u8)n; return; }
    int len = n < 0x100 ? 1 : n < 0x10000 ? 2 : n < 0x100000000ull ? 4 : 8;
    *w->p++ = m | (u8)(len == 1 ? 24 : len == 2 ? 25 : len == 4 ? 26 : 27);
    for (int i = len - 1; i >= 0; i--) *w->p++ = (u8)(n >> (8 * i));
}
static void wr_int(wr *w, i64 v) { if (v >= 0) wr_head(w, 0, (u64)v); else wr_head(w, 1, (u64)(-1 - v)); }
static void wr_text(wr *w, const char *s) { u64 n = 0; while (s[n]) n++; wr_head(w, 3, n); memcpy(w->p, s, n); w->p += n; }
static void wr_textn(wr *w, const u8 *s, u64 n) { wr_head(w, 3, n); memcpy(w->p, s, n); w->p += n; }
static void wr_null(wr *w) { *w->p++ = 0xf6; }
/* Copy one already-encoded item. */
static void wr_raw(wr *w, rd item) { rd e = item; rd_skip(&e); u64 n = e.p - item.p; memcpy(w->p, item.p, n); w->p += n; }

static wr wr_new(u32 cap) { u8 *b = aos_bump(cap); wr w = { b, b }; return w; }
static i64 wr_done(wr *w) { return ((i64)(u32)w->start << 32) | (i64)(u32)(w->p - w->start); }

#endif

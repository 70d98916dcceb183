/* Canonical CBOR encoding in C: the same bytes as kernel/world/cbor.py's encoder.
 *
 * Why: the Python encoder is the largest CPU cost per world event (every
 * record, step input, state and hash goes through it). This file encodes
 * only the plain value model whose bytes the Python encoder defines exactly:
 * exact str, int (64-bit heads), float, bytes, list, tuple, dict, None,
 * True, False. Anything else (subclasses, buffers, ints past 64 bits,
 * array keys, keys that encode alike, values nested deeper than
 * MAX_DEPTH, text that is not UTF-8) raises Fallback, and cbor.py then
 * runs the Python encoder on the whole value, which gives the reference
 * bytes or the reference error. So this is an accelerator, never a second
 * definition of the format.
 *
 * The rules (RFC 7049 canonical, as AOS's serde_cbor Value writes them):
 * shortest heads; map keys sorted by their encoded bytes, shorter first;
 * floats in the shortest of half/single/double that keeps the value (the
 * same PyFloat_Pack2/4 the struct module uses), NaN as f97e00.
 *
 * No Python code runs while encoding (exact types only, no callbacks), so
 * the borrowed references taken from dicts and lists stay valid.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 200 /* deeper values go to Python, which decides (RecursionError -> CborError) */

static PyObject *Fallback;

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const void *src, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static int put_head(Buf *b, unsigned major, uint64_t n) {
    if (buf_reserve(b, 9) < 0) return -1;
    unsigned char *p = (unsigned char *)b->data + b->len;
    unsigned char m = (unsigned char)(major << 5);
    if (n < 24) {
        p[0] = m | (unsigned char)n;
        b->len += 1;
    } else if (n < 0x100) {
        p[0] = m | 24;
        p[1] = (unsigned char)n;
        b->len += 2;
    } else if (n < 0x10000) {
        p[0] = m | 25;
        p[1] = (unsigned char)(n >> 8);
        p[2] = (unsigned char)n;
        b->len += 3;
    } else if (n < 0x100000000ULL) {
        p[0] = m | 26;
        for (int i = 0; i < 4; i++) p[1 + i] = (unsigned char)(n >> (24 - 8 * i));
        b->len += 5;
    } else {
        p[0] = m | 27;
        for (int i = 0; i < 8; i++) p[1 + i] = (unsigned char)(n >> (56 - 8 * i));
        b->len += 9;
    }
    return 0;
}

static int fallback(const char *why) {
    PyErr_SetString(Fallback, why);
    return -1;
}

static int put_float(Buf *b, double x) {
    unsigned char tmp[8];
    if (isnan(x)) return buf_put(b, "\xf9\x7e\x00", 3);
    /* half, then single, exactly as cbor.py's struct.pack('>e'/'>f') tries them */
    if (PyFloat_Pack2(x, (char *)tmp, 0) == 0) {
        double back = PyFloat_Unpack2((const char *)tmp, 0);
        if (back == -1.0 && PyErr_Occurred()) return -1;
        if (back == x) {
            if (buf_reserve(b, 3) < 0) return -1;
            b->data[b->len] = (char)0xF9;
            memcpy(b->data + b->len + 1, tmp, 2);
            b->len += 3;
            return 0;
        }
    } else if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
    } else {
        return -1;
    }
    if (PyFloat_Pack4(x, (char *)tmp, 0) == 0) {
        double back = PyFloat_Unpack4((const char *)tmp, 0);
        if (back == -1.0 && PyErr_Occurred()) return -1;
        if (back == x) {
            if (buf_reserve(b, 5) < 0) return -1;
            b->data[b->len] = (char)0xFA;
            memcpy(b->data + b->len + 1, tmp, 4);
            b->len += 5;
            return 0;
        }
    } else if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
    } else {
        return -1;
    }
    if (PyFloat_Pack8(x, (char *)tmp, 0) < 0) return -1;
    if (buf_reserve(b, 9) < 0) return -1;
    b->data[b->len] = (char)0xFB;
    memcpy(b->data + b->len + 1, tmp, 8);
    b->len += 9;
    return 0;
}

static int enc(Buf *b, PyObject *v, int depth);

typedef struct {
    Py_ssize_t off; /* the key's encoding in the scratch buffer */
    Py_ssize_t len;
    PyObject *value; /* borrowed */
} Entry;

static const char *scratch_base; /* qsort has no context argument; set per sort */

static int entry_cmp(const void *pa, const void *pb) {
    const Entry *a = pa, *b = pb;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return memcmp(scratch_base + a->off, scratch_base + b->off, (size_t)a->len);
}

static int enc_dict(Buf *b, PyObject *v, int depth) {
    Py_ssize_t n = PyDict_GET_SIZE(v);
    if (n == 0) return buf_put(b, "\xa0", 1);
    Entry small[16];
    Entry *entries = n <= 16 ? small : PyMem_Malloc(sizeof(Entry) * (size_t)n);
    if (entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Buf keys = {NULL, 0, 0};
    int rc = -1;
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *val;
    while (PyDict_Next(v, &pos, &k, &val)) {
        if (PyTuple_CheckExact(k)) { /* an array key: no decoder (ours or AOS's) reads it back */
            fallback("array key");
            goto done;
        }
        Py_ssize_t start = keys.len;
        if (enc(&keys, k, depth + 1) < 0) goto done;
        entries[i].off = start;
        entries[i].len = keys.len - start;
        entries[i].value = val;
        i++;
    }
    scratch_base = keys.data;
    qsort(entries, (size_t)n, sizeof(Entry), entry_cmp);
    for (i = 1; i < n; i++) {
        if (entry_cmp(&entries[i - 1], &entries[i]) == 0) { /* e.g. two NaN keys */
            fallback("two keys with the same encoding");
            goto done;
        }
    }
    if (put_head(b, 5, (uint64_t)n) < 0) goto done;
    for (i = 0; i < n; i++) {
        if (buf_put(b, keys.data + entries[i].off, entries[i].len) < 0) goto done;
        if (enc(b, entries[i].value, depth + 1) < 0) goto done;
    }
    rc = 0;
done:
    PyMem_Free(keys.data);
    if (entries != small) PyMem_Free(entries);
    return rc;
}

static int enc(Buf *b, PyObject *v, int depth) {
    if (depth > MAX_DEPTH) return fallback("deep");
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (s == NULL) { /* lone surrogates: Python's str.encode raises the reference error */
            PyErr_Clear();
            return fallback("text");
        }
        if (put_head(b, 3, (uint64_t)n) < 0) return -1;
        return buf_put(b, s, n);
    }
    if (t == &PyLong_Type) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow == 0) {
            if (x == -1 && PyErr_Occurred()) return -1;
            if (x >= 0) return put_head(b, 0, (uint64_t)x);
            return put_head(b, 1, (uint64_t)(-1 - x));
        }
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(v);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                return fallback("int");
            }
            return put_head(b, 0, (uint64_t)u);
        }
        return fallback("int"); /* below -2**63: rare, Python does it */
    }
    if (t == &PyDict_Type) {
        if (Py_EnterRecursiveCall(" while encoding CBOR")) {
            PyErr_Clear();
            return fallback("deep");
        }
        int rc = enc_dict(b, v, depth);
        Py_LeaveRecursiveCall();
        return rc;
    }
    if (t == &PyList_Type || t == &PyTuple_Type) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
        PyObject **items = PySequence_Fast_ITEMS(v);
        if (put_head(b, 4, (uint64_t)n) < 0) return -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            /* a list cannot change size here: no Python code runs while encoding */
            if (enc(b, items[i], depth + 1) < 0) return -1;
        }
        return 0;
    }
    if (v == Py_None) return buf_put(b, "\xf6", 1);
    if (v == Py_True) return buf_put(b, "\xf5", 1);
    if (v == Py_False) return buf_put(b, "\xf4", 1);
    if (t == &PyBytes_Type) {
        Py_ssize_t n = PyBytes_GET_SIZE(v);
        if (put_head(b, 2, (uint64_t)n) < 0) return -1;
        return buf_put(b, PyBytes_AS_STRING(v), n);
    }
    if (t == &PyFloat_Type) return put_float(b, PyFloat_AS_DOUBLE(v));
    return fallback("type");
}

/* encode(value, tagged) -> bytes; raises Fallback where cbor.py's Python encoder must decide */
static PyObject *py_encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode(value, tagged)");
        return NULL;
    }
    Buf b = {NULL, 0, 0};
    if (PyObject_IsTrue(args[1]) && buf_put(&b, "\xd9\xd9\xf7", 3) < 0) return NULL;
    if (enc(&b, args[0], 0) < 0) {
        PyMem_Free(b.data);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
    PyMem_Free(b.data);
    return out;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))py_encode, METH_FASTCALL,
     "encode(value, tagged) -> canonical CBOR bytes (self-describe tag first when tagged)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ccbor", NULL, -1, methods};

PyMODINIT_FUNC PyInit__ccbor(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Fallback = PyErr_NewException("aos.kernel.world._ccbor.Fallback", NULL, NULL);
    if (Fallback == NULL || PyModule_AddObjectRef(m, "Fallback", Fallback) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* The learnt n-gram sum of the comment scorer, in C.
 *
 * Why C: the sum looks up every 1-, 2- and 3-gram of a comment (about 3 lookups a
 * character) in a table of ~100,000 grams. In Python each lookup builds a new string,
 * hashes it and misses the CPU cache three times in a dict of that size (~160 ns); here
 * a gram is its code points packed in a 64-bit integer, looked up in one flat
 * open-addressing table (one cache line per probe), with no allocation at all.
 *
 * NgramTable(weights: dict[str, float]).sum(u: str) -> float gives exactly what
 * Scorer._ngram_sum_py gives, added in the same order: the grams' weights, with the
 * end of the comment counted again (its last character twice more, its last pair once
 * more). Grams holding U+0000 (the scorer's GAP) have no weight.
 * NgramTable.from_tsv(data) builds the same table straight from the weights file.
 *
 * NgramTable.evidence(t, terms, ngram_weight) is the scorer's walk over a comment's
 * matched terms (negation, degree, contrast, chatter, sarcasm, irony, a question's
 * damping) and the n-gram sum of what chatter leaves: Scorer._evidence_py, operation
 * for operation, so the floats are the same bit for bit. In Python the walk was ~2.2 us
 * of a comment's 7.8 (here ~0.7). `configure` gives it the rules' constants, once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

typedef struct {
    uint64_t key; /* 0: empty slot (no gram packs to 0: code point 0 is never kept) */
    double weight;
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask;
    int shift; /* 64 - log2(slots): Fibonacci hashing keeps the product's top bits */
    Py_ssize_t size;
} NgramTable;

#define SHIFT 21 /* bits of one code point */

static inline uint64_t slot_of(uint64_t key, int shift) {
    return key * 0x9E3779B97F4A7C15ULL >> shift;
}

static inline double weight_of(const NgramTable *t, uint64_t key) {
    uint64_t i = slot_of(key, t->shift);
    for (;;) {
        const Slot *s = &t->slots[i];
        if (s->key == key) return s->weight;
        if (s->key == 0) return 0.0;
        i = (i + 1) & t->mask;
    }
}

/* Packs a 1-3 character gram without U+0000; returns 0 for anything else. A 2-gram's
 * first code point is non-zero, so it never packs like a 1-gram; likewise for 3-grams. */
static uint64_t pack(PyObject *gram) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(gram);
    if (n < 1 || n > 3) return 0;
    int kind = PyUnicode_KIND(gram);
    const void *data = PyUnicode_DATA(gram);
    uint64_t key = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == 0) return 0;
        key = key << SHIFT | c;
    }
    return key;
}

/* Empties the table and sizes it for n grams (load <= 1/2: short probes). */
static int table_reserve(NgramTable *self, Py_ssize_t n) {
    uint64_t capacity = 16;
    int bits = 4;
    while (capacity < (uint64_t)n * 2) {
        capacity <<= 1;
        bits++;
    }
    Slot *slots = PyMem_Calloc(capacity, sizeof(Slot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyMem_Free(self->slots);
    self->slots = slots;
    self->mask = capacity - 1;
    self->shift = 64 - bits;
    self->size = 0;
    return 0;
}

/* Sets a gram's weight (a later one replaces an earlier, as in a dict). */
static void table_put(NgramTable *self, uint64_t key, double w) {
    Slot *slots = self->slots;
    uint64_t i = slot_of(key, self->shift);
    while (slots[i].key != 0 && slots[i].key != key) i = (i + 1) & self->mask;
    self->size += slots[i].key == 0;
    slots[i].key = key;
    slots[i].weight = w;
}

static int table_init(NgramTable *self, PyObject *args, PyObject *kwds) {
    PyObject *weights;
    static char *names[] = {"weights", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!", names, &PyDict_Type, &weights)) return -1;
    if (table_reserve(self, PyDict_Size(weights)) < 0) return -1;
    PyObject *gram, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(weights, &pos, &gram, &value)) {
        if (!PyUnicode_Check(gram)) {
            PyErr_SetString(PyExc_TypeError, "n-gram keys must be str");
            return -1;
        }
        double w = PyFloat_AsDouble(value);
        if (w == -1.0 && PyErr_Occurred()) return -1;
        uint64_t key = pack(gram);
        if (key != 0) table_put(self, key, w); /* else never looked up: no weight */
    }
    return 0;
}

/* NgramTable.from_tsv(data): the table of a weights file (UTF-8 lines "gram<TAB>weight",
 * blank lines and lines starting with '#' skipped), read without building a dict: the
 * dict of ~100,000 strings and floats, and the lines split on the way to it, took ~35 MB
 * that the worker's heap kept after they were freed. Same weights as the dict path. */
static PyObject *table_from_tsv(PyObject *cls, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const char *data = view.buf, *end = data + view.len;
    Py_ssize_t lines = 0;
    for (const char *p = data; p < end; p++) lines += *p == '\n';
    NgramTable *self = (NgramTable *)((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
    if (self == NULL || table_reserve(self, lines + 1) < 0) goto fail;
    for (const char *line = data; line < end;) {
        const char *eol = memchr(line, '\n', end - line);
        if (eol == NULL) eol = end;
        const char *stop = eol > line && eol[-1] == '\r' ? eol - 1 : eol;
        if (stop > line && *line != '#') {
            const char *tab = memchr(line, '\t', stop - line);
            char number[64];
            Py_ssize_t digits = tab == NULL ? 0 : stop - tab - 1;
            if (tab == NULL || digits < 1 || digits >= (Py_ssize_t)sizeof number ||
                memchr(tab + 1, '\t', digits) != NULL) {
                PyErr_Format(PyExc_ValueError, "not a gram<TAB>weight line: %.*s",
                             (int)(stop - line > 80 ? 80 : stop - line), line);
                goto fail;
            }
            memcpy(number, tab + 1, digits);
            number[digits] = '\0';
            double w = PyOS_string_to_double(number, NULL, PyExc_ValueError);
            if (w == -1.0 && PyErr_Occurred()) goto fail;
            PyObject *gram = PyUnicode_DecodeUTF8(line, tab - line, "strict");
            if (gram == NULL) goto fail;
            uint64_t key = pack(gram);
            Py_DECREF(gram);
            if (key != 0) table_put(self, key, w);
        }
        line = eol + 1;
    }
    PyBuffer_Release(&view);
    return (PyObject *)self;
fail:
    PyBuffer_Release(&view);
    Py_XDECREF(self);
    return NULL;
}

static void table_dealloc(NgramTable *self) {
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The sum over n code points (as PyUnicode holds them: kind and data). */
static double sum_of(const NgramTable *self, int kind, const void *data, Py_ssize_t n) {
    if (n == 0) return 0.0;
    /* Three sums, each left to right, combined as the Python version combines them. */
    double ones = 0.0, pairs = 0.0, triples = 0.0, last_one = 0.0, last_pair = 0.0;
    Py_UCS4 a = 0, b = 0; /* the two characters before c */
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c != 0) {
            last_one = weight_of(self, c);
            ones += last_one;
        } else {
            last_one = 0.0;
        }
        if (i >= 1) {
            last_pair = (b != 0 && c != 0) ? weight_of(self, (uint64_t)b << SHIFT | c) : 0.0;
            pairs += last_pair;
        }
        if (i >= 2 && a != 0 && b != 0 && c != 0)
            triples += weight_of(self, ((uint64_t)a << SHIFT | b) << SHIFT | c);
        a = b;
        b = c;
    }
    double learnt = ones + 2 * last_one;
    if (n > 1) {
        learnt += pairs + last_pair;
        if (n > 2) learnt += triples;
    }
    return learnt;
}

static int ready_table(const NgramTable *self) {
    if (self->slots == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "NgramTable not initialised");
        return 0;
    }
    return 1;
}

static PyObject *table_sum(NgramTable *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "sum() takes a str");
        return NULL;
    }
    if (!ready_table(self)) return NULL;
    return PyFloat_FromDouble(
        sum_of(self, PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)));
}

/* -- the scorer's walk over a comment's terms (Scorer._evidence_py) -------------------- */

/* What `configure` sets: the term kinds, the rules' constants and character sets. */
static long k_sentiment, k_negator, k_degree, k_contrast, k_sarcasm, k_ironic, window;
static double negated, before_contrast, question_damping, irony_line;
static Py_UCS4 clause_ends[32], question_ends[32];
static int n_clause_ends, n_question_ends, configured;
#define GAP 0

static inline int is_in(Py_UCS4 c, const Py_UCS4 *set, int n) {
    for (int i = 0; i < n; i++)
        if (set[i] == c) return 1;
    return 0;
}

static inline int is_clause_end(Py_UCS4 c) { return is_in(c, clause_ends, n_clause_ends); }

static inline int is_word_char(Py_UCS4 c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'';
}

static int chars_of(PyObject *str, Py_UCS4 *out, int cap) {
    if (!PyUnicode_Check(str) || PyUnicode_GET_LENGTH(str) > cap) {
        PyErr_SetString(PyExc_ValueError, "a character set is a str of at most 32");
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(str);
    for (Py_ssize_t i = 0; i < n; i++) out[i] = PyUnicode_READ_CHAR(str, i);
    return (int)n;
}

/* configure(kinds, window, negated, before_contrast, question_damping, irony_line,
 *           clause_ends, question_ends); kinds: (sentiment, negator, degree, contrast,
 * sarcasm, ironic); any other kind is chatter. */
static PyObject *configure(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *clause, *question;
    long kinds[6], w;
    double n, b, q, line;
    if (!PyArg_ParseTuple(args, "(llllll)lddddUU", &kinds[0], &kinds[1], &kinds[2], &kinds[3],
                          &kinds[4], &kinds[5], &w, &n, &b, &q, &line, &clause, &question))
        return NULL;
    Py_UCS4 c_set[32], q_set[32];
    int nc = chars_of(clause, c_set, 32), nq = nc < 0 ? -1 : chars_of(question, q_set, 32);
    if (nq < 0) return NULL;
    k_sentiment = kinds[0], k_negator = kinds[1], k_degree = kinds[2], k_contrast = kinds[3];
    k_sarcasm = kinds[4], k_ironic = kinds[5], window = w;
    negated = n, before_contrast = b, question_damping = q, irony_line = line;
    memcpy(clause_ends, c_set, sizeof c_set), n_clause_ends = nc;
    memcpy(question_ends, q_set, sizeof q_set), n_question_ends = nq;
    configured = 1;
    Py_RETURN_NONE;
}

/* evidence(t, terms, ngram_weight) -> float: Scorer._evidence_py, operation for
 * operation (the same float sums in the same order). `terms` is a list of (start, end,
 * kind, value) in order, none overlapping. */
static PyObject *table_evidence(NgramTable *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyUnicode_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "evidence(t: str, terms: list, ngram_weight)");
        return NULL;
    }
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_ngrams.configure was not called");
        return NULL;
    }
    if (!ready_table(self)) return NULL;
    PyObject *t = args[0], *terms = args[1];
    double weight = PyFloat_AsDouble(args[2]);
    if (weight == -1.0 && PyErr_Occurred()) return NULL;
    int kind = PyUnicode_KIND(t);
    const void *data = PyUnicode_DATA(t);
    Py_ssize_t len = PyUnicode_GET_LENGTH(t), count = PyList_GET_SIZE(terms);
    double total = 0.0, clause = 0.0, degree = 1.0, sarcasm = 0.0, ironic = 0.0;
    long negation = 0;
    Py_ssize_t at = 0, chatter = 0, chatter_chars = 0;
    /* u: t with each chatter span one GAP (the n-grams do not see chatter) */
    Py_UCS4 *u = PyMem_Malloc(sizeof(Py_UCS4) * (size_t)(len ? len : 1));
    if (u == NULL) return PyErr_NoMemory();
    Py_ssize_t ulen = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *term = PyList_GET_ITEM(terms, k);
        if (!PyTuple_Check(term) || PyTuple_GET_SIZE(term) != 4) {
            PyErr_SetString(PyExc_TypeError, "a term is (start, end, kind, value)");
            goto fail;
        }
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(term, 0));
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(term, 1));
        long term_kind = PyLong_AsLong(PyTuple_GET_ITEM(term, 2));
        double value = PyFloat_AsDouble(PyTuple_GET_ITEM(term, 3));
        if (PyErr_Occurred()) goto fail;
        if (start < at || end < start || end > len) {
            PyErr_SetString(PyExc_ValueError, "terms are in order, inside the text");
            goto fail;
        }
        if (start > at) { /* unmatched characters and words: each one a token */
            int ends = 0;
            for (Py_ssize_t i = at; i < start && !ends; i++)
                ends = is_clause_end(PyUnicode_READ(kind, data, i));
            if (ends) {
                negation = -1, degree = 1.0;
            } else if (negation > 0) {
                long tokens = 0;
                for (Py_ssize_t i = at; i < start; tokens++) {
                    if (is_word_char(PyUnicode_READ(kind, data, i))) {
                        while (i < start && is_word_char(PyUnicode_READ(kind, data, i))) i++;
                    } else {
                        i++;
                    }
                }
                negation -= tokens;
            }
        }
        for (Py_ssize_t i = at; i < start; i++) u[ulen++] = PyUnicode_READ(kind, data, i);
        at = end;
        if (term_kind == k_sentiment) {
            value *= degree;
            clause += negation > 0 ? value * negated : value;
            degree = 1.0;
            negation = 0;
        } else if (term_kind == k_negator) {
            negation = negation > 0 ? 0 : window;  /* 不是不好: the second cancels */
        } else if (term_kind == k_degree) {
            degree = value;
        } else if (term_kind == k_contrast) {
            total = (total + clause) * before_contrast;
            clause = 0.0;
        } else { /* chatter, sarcasm and ironic praise: markers, not opinions */
            negation -= 1;
            chatter++, chatter_chars += end - start;
            u[ulen++] = GAP;
            if (term_kind == k_sarcasm) sarcasm += value;
            else if (term_kind == k_ironic) ironic += value;
            continue;
        }
        for (Py_ssize_t i = start; i < end; i++) u[ulen++] = PyUnicode_READ(kind, data, i);
    }
    for (Py_ssize_t i = at; i < len; i++) u[ulen++] = PyUnicode_READ(kind, data, i);
    double evidence = total + clause;
    if (ulen > chatter) evidence += weight * sum_of(self, PyUnicode_4BYTE_KIND, u, ulen);
    PyMem_Free(u);
    if (sarcasm != 0.0) { /* 呵呵 质量真好: the praise is the sarcasm, in one clause */
        Py_ssize_t kept = len;
        while (kept > 0 && is_clause_end(PyUnicode_READ(kind, data, kept - 1)))
            kept--;
        int one_clause = 1;
        for (Py_ssize_t i = 0; i < kept && one_clause; i++)
            one_clause = !is_clause_end(PyUnicode_READ(kind, data, i));
        if (one_clause) evidence = sarcasm - fabs(evidence);
    }
    if (ironic != 0.0) evidence += evidence <= irony_line ? -ironic : ironic;
    if (len > 0 && is_in(PyUnicode_READ(kind, data, len - 1), question_ends, n_question_ends))
        evidence *= question_damping;
    return PyFloat_FromDouble(evidence);
fail:
    PyMem_Free(u);
    return NULL;
}

static Py_ssize_t table_len(NgramTable *self) { return self->size; }

static PyMethodDef table_methods[] = {
    {"from_tsv", (PyCFunction)table_from_tsv, METH_O | METH_CLASS,
     "from_tsv(data: bytes) -> NgramTable: the weights of a gram<TAB>weight file."},
    {"sum", (PyCFunction)table_sum, METH_O,
     "sum(u) -> float: the weights of every 1-, 2- and 3-gram of u, the end counted again."},
    {"evidence", (PyCFunction)(void (*)(void))table_evidence, METH_FASTCALL,
     "evidence(t, terms, ngram_weight) -> float: the scorer's walk over t's terms."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods table_as_sequence = {.sq_length = (lenfunc)table_len};

static PyTypeObject NgramTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "streams.sentiment._ngrams.NgramTable",
    .tp_doc = "Learnt 1-3-gram weights packed for the scorer's n-gram sum.",
    .tp_basicsize = sizeof(NgramTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)table_init,
    .tp_dealloc = (destructor)table_dealloc,
    .tp_methods = table_methods,
    .tp_as_sequence = &table_as_sequence,
};

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(kinds, window, negated, before_contrast, question_damping, irony_line, "
     "clause_ends, question_ends)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ngrams", "The scorer's n-gram sum and its walk, in C.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__ngrams(void) {
    if (PyType_Ready(&NgramTableType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&NgramTableType);
    if (PyModule_AddObject(m, "NgramTable", (PyObject *)&NgramTableType) < 0) {
        Py_DECREF(&NgramTableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

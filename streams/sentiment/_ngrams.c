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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

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

static int table_init(NgramTable *self, PyObject *args, PyObject *kwds) {
    PyObject *weights;
    static char *names[] = {"weights", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!", names, &PyDict_Type, &weights)) return -1;
    Py_ssize_t n = PyDict_Size(weights);
    uint64_t capacity = 16;
    int bits = 4;
    while (capacity < (uint64_t)n * 2) { /* load <= 1/2: short probes */
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
        if (key == 0) continue; /* never looked up: no weight, as in the dict */
        uint64_t i = slot_of(key, self->shift);
        while (slots[i].key != 0 && slots[i].key != key) i = (i + 1) & self->mask;
        self->size += slots[i].key == 0;
        slots[i].key = key;
        slots[i].weight = w;
    }
    return 0;
}

static void table_dealloc(NgramTable *self) {
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *table_sum(NgramTable *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "sum() takes a str");
        return NULL;
    }
    if (self->slots == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "NgramTable not initialised");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n == 0) return PyFloat_FromDouble(0.0);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
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
    return PyFloat_FromDouble(learnt);
}

static Py_ssize_t table_len(NgramTable *self) { return self->size; }

static PyMethodDef table_methods[] = {
    {"sum", (PyCFunction)table_sum, METH_O,
     "sum(u) -> float: the weights of every 1-, 2- and 3-gram of u, the end counted again."},
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

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ngrams", "The scorer's n-gram sum, in C.", -1, NULL,
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

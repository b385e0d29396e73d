/* Slotted classes whose numbers are held unboxed: the detectors' running statistics.
 *
 * A room keeps ~7 detectors and one more per watched product (~60,000 at 5,000 rooms),
 * each made of a few small statistics (decayed means, CUSUM scores, levels). As Python
 * objects with __slots__, each float is a 24-byte object behind an 8-byte pointer: an
 * Ewma took 104 bytes for its 3 doubles, and takes 56 here (its object and GC headers,
 * which a Python subclass keeps, and the doubles).
 *
 * struct_type(name, codes, names) makes a base class whose instances hold the named
 * fields in place, one code each: 'd' a C double (reads as float; an int stored is
 * converted), 'q' a 64-bit integer, '?' a bool. Reads and writes go through CPython's
 * member descriptors (structmember.h), with no arithmetic: a subclass with
 * `__slots__ = ()` keeps its methods in Python, computes as before and stores the same
 * doubles. EwmaFields is the one base with a method in C, the decayed mean's update.
 *
 * The Python reference is the same classes over plain __slots__ (streams.anomaly.fields,
 * LIVEROOM_PURE_FIELDS=1) and Ewma.update_python; tests/unit/test_fields.py runs the
 * detectors both ways and compares every saved state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>
#include <string.h>

static void fields_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp); /* a heap type: each instance holds a reference to it */
}

static char *copy_of(const char *s) {
    size_t n = strlen(s) + 1;
    char *out = PyMem_Malloc(n);
    if (out != NULL) memcpy(out, s, n);
    return out;
}

/* struct_type(name: str, codes: str, names: tuple[str, ...]) -> type */
static PyObject *struct_type(PyObject *module, PyObject *args) {
    (void)module;
    const char *name, *codes;
    PyObject *names;
    if (!PyArg_ParseTuple(args, "ssO!", &name, &codes, &PyTuple_Type, &names)) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if ((Py_ssize_t)strlen(codes) != n) {
        PyErr_SetString(PyExc_ValueError, "struct_type: one code a name");
        return NULL;
    }
    /* The members are copied into the type; their names and the type's name are not, and
     * live as long as the process (a fixed few classes, made at import). */
    PyMemberDef *members = PyMem_Calloc((size_t)n + 1, sizeof(PyMemberDef));
    if (members == NULL) return PyErr_NoMemory();
    Py_ssize_t offset = (Py_ssize_t)sizeof(PyObject);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(names, i);
        const char *field = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : NULL;
        if (field == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "struct_type: names are str");
            PyMem_Free(members);
            return NULL;
        }
        int type;
        Py_ssize_t size;
        switch (codes[i]) {
        case 'd': type = T_DOUBLE, size = sizeof(double); break;
        case 'q': type = T_LONGLONG, size = sizeof(long long); break;
        case '?': type = T_BOOL, size = sizeof(char); break;
        default:
            PyErr_Format(PyExc_ValueError, "struct_type: unknown code %c", codes[i]);
            PyMem_Free(members);
            return NULL;
        }
        offset = (offset + size - 1) / size * size; /* aligned to its size */
        char *held = copy_of(field);
        if (held == NULL) {
            PyMem_Free(members);
            return PyErr_NoMemory();
        }
        members[i] = (PyMemberDef){held, type, offset, 0, NULL};
        offset += size;
    }
    char *full = PyMem_Malloc(strlen(name) + sizeof("streams.anomaly._fields."));
    if (full == NULL) {
        PyMem_Free(members);
        return PyErr_NoMemory();
    }
    strcpy(full, "streams.anomaly._fields.");
    strcat(full, name);
    PyType_Slot slots[] = {
        {Py_tp_members, members},
        {Py_tp_dealloc, (void *)fields_dealloc},
        {0, NULL},
    };
    PyType_Spec spec = {
        full,
        (int)((offset + 7) / 8 * 8),
        0,
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
        slots,
    };
    PyObject *out = PyType_FromSpec(&spec);
    PyMem_Free(members); /* copied into the type */
    return out;
}

/* The decayed mean's update in C: it runs ~5 times a detector step, and over fields each
 * read in Python builds a float again. Its Python reference is Ewma.update_python
 * (streams.anomaly.stats), the same two lines in the same order of operations. */
typedef struct {
    PyObject_HEAD
    double decay, mean, weight;
} EwmaFields;

static PyObject *ewma_update(PyObject *self, PyObject *arg) {
    double x = PyFloat_AsDouble(arg); /* an int converts as Python's int - float does */
    if (x == -1.0 && PyErr_Occurred()) return NULL;
    EwmaFields *e = (EwmaFields *)self;
    e->weight = e->weight * e->decay + 1.0;
    e->mean += (x - e->mean) / e->weight;
    return PyFloat_FromDouble(e->mean);
}

static PyMemberDef ewma_members[] = {
    {"decay", T_DOUBLE, offsetof(EwmaFields, decay), 0, NULL},
    {"mean", T_DOUBLE, offsetof(EwmaFields, mean), 0, NULL},
    {"weight", T_DOUBLE, offsetof(EwmaFields, weight), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef ewma_methods[] = {
    {"update", ewma_update, METH_O, "Add x; return the mean (Ewma.update_python's C form)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ewma_slots[] = {
    {Py_tp_members, ewma_members},
    {Py_tp_methods, ewma_methods},
    {Py_tp_dealloc, (void *)fields_dealloc},
    {0, NULL},
};

static PyType_Spec ewma_spec = {
    "streams.anomaly._fields.EwmaFields",
    sizeof(EwmaFields),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    ewma_slots,
};

static PyMethodDef methods[] = {
    {"struct_type", struct_type, METH_VARARGS, "A base class of unboxed fields (see the file)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fields", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fields(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *ewma = PyType_FromSpec(&ewma_spec);
    if (ewma == NULL || PyModule_AddObject(m, "EwmaFields", ewma) < 0) {
        Py_XDECREF(ewma);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* The ingest stage's fast path: decoded JSON -> compact event tuples, in C.
 *
 * Why C: routing a fetch decodes each record with orjson and then validated every
 * event in Python, ~40 bytecodes of dict lookups and type checks an event (about half
 * of routing's time). Here the same checks run over the decoded dicts in one call.
 *
 * valid_events(doc, kind, now_ms) -> list of tuples, or None.
 * `doc` is what orjson.loads gave for one record: an event object or an array of them.
 * When every event is valid it returns their compact tuples, exactly the tuples
 * streams.events.validate builds (same layouts, same objects). When any check fails,
 * or anything is unusual (an integer beyond 64 bits, a non-ASCII room id), it returns
 * None and decides nothing: the Python path (streams.events.decode_record) then sorts
 * the good from the bad and gives each reject its reason. So this file never has to
 * know a reason, and it may only accept what the Python rules accept; a differential
 * Hypothesis test (tests/unit/test_decode_properties.py) holds it to that.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

/* streams.events' limits; events.py checks at import that these are its own. */
#define MAX_ID_CHARS 128
#define MAX_TEXT_CHARS 2000
#define MAX_CLOCK_SKEW_MS (24LL * 3600 * 1000)

enum { VIEW, COMMENT, CART, ORDER, KINDS };
static const char *KIND_NAMES[KINDS] = {"view", "comment", "cart", "order"};

static PyObject *k_type, *k_event_id, *k_room_id, *k_user_id, *k_ts, *k_action, *k_text,
    *k_product_id, *k_quantity, *k_order_id, *k_amount, *k_status;
static PyObject *kind_number[KINDS], *kind_name[KINDS], *s_enter, *s_leave, *s_paid,
    *s_refunded, *one;

/* A borrowed value, or NULL if absent or JSON null (as obj.get(name) is None). */
static inline PyObject *field(PyObject *obj, PyObject *name) {
    PyObject *v = PyDict_GetItemWithError(obj, name);
    return v == Py_None ? NULL : v;
}

static inline int is_id(PyObject *v) {
    if (v == NULL || !PyUnicode_CheckExact(v)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    return n > 0 && n <= MAX_ID_CHARS;
}

static inline int is_room_id(PyObject *v) {
    if (!is_id(v) || !PyUnicode_IS_ASCII(v)) return 0;
    const unsigned char *c = PyUnicode_1BYTE_DATA(v);
    for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(v); i < n; i++) {
        unsigned char x = c[i];
        if (!((x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9') ||
              x == '_' || x == '.' || x == ':' || x == '-'))
            return 0;
    }
    return 1;
}

/* Equal to an interned constant: exact str of the same text. */
static inline int is_str(PyObject *v, PyObject *constant) {
    return v != NULL && PyUnicode_CheckExact(v) &&
           (v == constant || PyUnicode_Compare(v, constant) == 0);
}

/* quantity: absent is 1; else an int (not a bool) >= 1 within 64 bits. Borrowed. */
static inline PyObject *quantity_of(PyObject *obj) {
    PyObject *q = PyDict_GetItemWithError(obj, k_quantity);
    if (q == NULL) return PyErr_Occurred() ? NULL : one;
    if (!PyLong_CheckExact(q)) return NULL;
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(q, &overflow);
    return overflow == 0 && n >= 1 ? q : NULL;
}

/* One event's tuple (new reference), or NULL (with no exception) if not plainly valid. */
static PyObject *event_of(PyObject *obj, int kind, long long now_ms) {
    if (!PyDict_CheckExact(obj)) return NULL;
    PyObject *type = field(obj, k_type);
    if (type != NULL && !is_str(type, kind_name[kind])) return NULL;
    PyObject *event_id = field(obj, k_event_id), *room_id = field(obj, k_room_id),
             *user_id = field(obj, k_user_id), *ts = field(obj, k_ts);
    if (!is_id(event_id) || !is_room_id(room_id) || !is_id(user_id)) return NULL;
    if (ts == NULL || !PyLong_CheckExact(ts)) return NULL;
    int overflow;
    long long t = PyLong_AsLongLongAndOverflow(ts, &overflow);
    if (overflow || t > now_ms + MAX_CLOCK_SKEW_MS || t < now_ms - MAX_CLOCK_SKEW_MS)
        return NULL; /* (now_ms is the clock: within a day of it, nothing overflows) */
    if (kind == VIEW) {
        PyObject *action = PyDict_GetItemWithError(obj, k_action);
        int enter;
        if (action == NULL)
            enter = 1;
        else if (is_str(action, s_enter))
            enter = 1;
        else if (is_str(action, s_leave))
            enter = 0;
        else
            return NULL;
        return PyTuple_Pack(6, kind_number[VIEW], event_id, user_id, ts, room_id,
                            enter ? Py_True : Py_False);
    }
    if (kind == COMMENT) {
        PyObject *text = field(obj, k_text);
        if (text == NULL || !PyUnicode_CheckExact(text) ||
            PyUnicode_GET_LENGTH(text) > MAX_TEXT_CHARS)
            return NULL;
        return PyTuple_Pack(6, kind_number[COMMENT], event_id, user_id, ts, room_id, text);
    }
    if (kind == CART) {
        PyObject *product_id = field(obj, k_product_id);
        if (!is_id(product_id)) return NULL;
        PyObject *quantity = quantity_of(obj);
        if (quantity == NULL) return NULL;
        return PyTuple_Pack(7, kind_number[CART], event_id, user_id, ts, room_id, product_id,
                            quantity);
    }
    PyObject *order_id = field(obj, k_order_id), *product_id = field(obj, k_product_id);
    if (!is_id(order_id) || !is_id(product_id)) return NULL;
    PyObject *quantity = quantity_of(obj);
    if (quantity == NULL) return NULL;
    PyObject *amount = field(obj, k_amount);
    if (amount == NULL) return NULL;
    if (PyFloat_CheckExact(amount)) {
        double a = PyFloat_AS_DOUBLE(amount);
        if (!(a >= 0 && isfinite(a))) return NULL;
    } else if (PyLong_CheckExact(amount)) {
        long long a = PyLong_AsLongLongAndOverflow(amount, &overflow);
        if (overflow || a < 0) return NULL;
    } else {
        return NULL;
    }
    PyObject *status = PyDict_GetItemWithError(obj, k_status);
    PyObject *paid;
    if (status == NULL || is_str(status, s_paid))
        paid = Py_True;
    else if (is_str(status, s_refunded))
        paid = Py_False;
    else
        return NULL;
    return PyTuple_Pack(10, kind_number[ORDER], event_id, user_id, ts, room_id, order_id,
                        product_id, quantity, amount, paid);
}

static PyObject *valid_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "valid_events(doc, kind, now_ms)");
        return NULL;
    }
    PyObject *doc = args[0];
    long kind = PyLong_AsLong(args[1]);
    long long now_ms = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (kind < 0 || kind >= KINDS) {
        PyErr_SetString(PyExc_ValueError, "kind must be 0-3");
        return NULL;
    }
    if (PyDict_CheckExact(doc)) {
        PyObject *event = event_of(doc, (int)kind, now_ms);
        if (event == NULL) goto not_plain;
        PyObject *out = PyList_New(1);
        if (out == NULL) {
            Py_DECREF(event);
            return NULL;
        }
        PyList_SET_ITEM(out, 0, event);
        return out;
    }
    if (!PyList_CheckExact(doc) || PyList_GET_SIZE(doc) == 0) Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(doc);
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *event = event_of(PyList_GET_ITEM(doc, i), (int)kind, now_ms);
        if (event == NULL) {
            Py_DECREF(out); /* the items set so far go with it; the rest are NULL */
            goto not_plain;
        }
        PyList_SET_ITEM(out, i, event);
    }
    return out;
not_plain:
    if (PyErr_Occurred()) return NULL; /* a real error (memory), not a bad event */
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"valid_events", (PyCFunction)(void (*)(void))valid_events, METH_FASTCALL,
     "valid_events(doc, kind, now_ms) -> the events' tuples if all are plainly valid, "
     "else None (the Python path decides)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_validate", "The ingest stage's validation fast path.", -1, methods,
};

static int intern(PyObject **slot, const char *text) {
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__validate(void) {
    if (intern(&k_type, "type") || intern(&k_event_id, "event_id") ||
        intern(&k_room_id, "room_id") || intern(&k_user_id, "user_id") || intern(&k_ts, "ts") ||
        intern(&k_action, "action") || intern(&k_text, "text") ||
        intern(&k_product_id, "product_id") || intern(&k_quantity, "quantity") ||
        intern(&k_order_id, "order_id") || intern(&k_amount, "amount") ||
        intern(&k_status, "status") || intern(&s_enter, "enter") || intern(&s_leave, "leave") ||
        intern(&s_paid, "paid") || intern(&s_refunded, "refunded"))
        return NULL;
    for (int k = 0; k < KINDS; k++) {
        kind_number[k] = PyLong_FromLong(k);
        if (kind_number[k] == NULL || intern(&kind_name[k], KIND_NAMES[k])) return NULL;
    }
    one = PyLong_FromLong(1);
    if (one == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *limits = Py_BuildValue("(iiL)", MAX_ID_CHARS, MAX_TEXT_CHARS, MAX_CLOCK_SKEW_MS);
    if (limits == NULL || PyModule_AddObject(m, "LIMITS", limits) < 0) {
        Py_XDECREF(limits);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

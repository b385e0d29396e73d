/* A room's fold of one event, in C: `RoomState.apply` (streams/rooms/room.py).
 *
 * Why C: folding an event into its room was ~55 % of the rooms stage's time in Python,
 * spent on the interpreter, not on the work: a view is five updates of flat tables
 * (the event id's dedup, the distinct viewers, presence, the recent viewers and the
 * per-second row), each behind a Python method that hashes the same user id again and
 * reads its object's attributes by name. Here the user id is hashed once, the tables
 * are updated through `_flat`'s own steps (its capsule, `_flat.h`), and the objects'
 * slots are read at their offsets, found once by `setup`.
 *
 * The Python classes stay the state and its reference: `RoomState.apply_python` is
 * the same fold step for step, and `tests/unit/test_room_fold.py` holds the two to the
 * same state, byte for byte, on streams with repeats, late events, rings that outgrow
 * a byte, distinct counts that become sketches and presence out of order. The rare
 * steps are not repeated here: C calls the Python method (the watermark entering a new
 * second, a table loaded since its ring was counted, an id outside its ring, a ring
 * widened, a set becoming a sketch), and an event of an unexpected shape is folded by
 * `apply_python` whole.
 *
 * `fold_group` is `RoomPartition._fold` (streams/rooms/partition.py): the loop over a
 * group's events around each fold (the room's lookup, the comment's score and the
 * observer's call, the outcome's counts, the room's activity), ~12 % of the fold in
 * Python. A group with an event of another shape folds in `_fold_python` whole.
 */
#include <math.h>
#include <string.h>

#include "_flat.h"
#include "structmember.h" /* T_OBJECT_EX */

static const FlatAPI *flat;
static int ready;

/* The classes whose slots are read here, and the slots, in the order setup takes. */
enum { K_ROOM, K_IDS, K_SEEN, K_SUMS, K_DISTINCT, K_PRESENCE, N_CLASSES };
static PyTypeObject *classes[N_CLASSES];

enum {
    R_WATERMARK, R_VIEWS, R_COMMENTS, R_CARTS, R_ORDERS, R_REFUNDS, R_GMV, R_REFUND_AMOUNT,
    R_NEGATIVE, R_SCORED, R_SCORE_SUM, R_VIEWERS, R_COMMENTERS, R_CARTERS, R_BUYERS,
    R_SUMS, R_RECENT_VIEWERS, R_RECENT_COMMENTERS, R_RECENT_CARTERS, R_RECENT_BUYERS,
    R_PRESENCE, R_IDS, R_LATENESS, N_ROOM
};
static const char *room_names[N_ROOM] = {
    "watermark_ms", "views", "comments", "cart_adds", "orders", "refunds", "gmv",
    "refund_amount", "negative_comments", "scored_comments", "score_sum", "viewers", "commenters", "carters", "buyers", "sums", "recent_viewers",
    "recent_commenters", "recent_carters", "recent_buyers", "presence", "seen_event_ids",
    "_lateness_ms",
};
enum { I_TABLE, I_COUNTS, I_SPAN, I_OLDEST, I_STALE, I_CUTOFF, I_EXPIRED, N_IDS };
static const char *ids_names[N_IDS] = {"first_seen", "_counts", "_span", "_oldest", "_stale",
                                       "_cutoff",    "_expired"};
enum { L_TABLE, L_LIVE, L_SPAN, L_OLDEST, L_STALE, L_WINDOWS, N_SEEN };
static const char *seen_names[N_SEEN] = {"last", "_live", "_span", "_oldest", "_stale", "_windows"};
enum { S_HOT, S_CHANGED, S_WIDTH, N_SUMS };
static const char *sums_names[N_SUMS] = {"_hot", "changed", "width"};
enum { D_EXACT, D_REGISTERS, D_INVERSE, D_ZEROS, D_CHANGED, N_DISTINCT };
static const char *distinct_names[N_DISTINCT] = {"exact", "registers", "inverse_sum", "zeros",
                                                 "_changed"};
enum { P_AT, P_BEFORE, P_ONLINE, P_OLDEST, P_PENDING, N_PRESENCE };
static const char *presence_names[N_PRESENCE] = {"at", "before", "online", "_oldest", "pending"};

static Py_ssize_t room_off[N_ROOM], ids_off[N_IDS], seen_off[N_SEEN], sums_off[N_SUMS],
    distinct_off[N_DISTINCT], presence_off[N_PRESENCE];

/* The event's layout and the room's constants (streams.events, streams.rooms.room),
 * given by setup so they are written once, in Python. */
enum {
    F_KIND, F_EVENT_ID, F_USER, F_TS, F_VIEW_ENTER, F_ORDER_AMOUNT, F_ORDER_PAID,
    VIEW, COMMENT, CART, ORDER,
    C_VIEWS, C_COMMENTS, C_CARTS, C_ORDERS, C_GMV, C_REFUNDS, C_NEGATIVE, C_SCORED,
    C_SCORE_SUM, APPLIED, LATE, DUPLICATE, N_LAYOUT
};
static long long layout[N_LAYOUT];
static double negative_at;   /* a score at or below this is a negative comment */
static Py_ssize_t exact_limit; /* DistinctCount: a sketch past this many keys */
static int rest_bits;        /* DistinctCount: the hash bits after the register index */
static PyObject *widened_plus_one; /* streams.rooms.windows._widened_plus_one */

static PyObject *one, *zero;
static PyObject *s_touch, *s_sweep, *s_place, *s_to_sketch, *s_advance, *s_apply_python, *s_note_product;

/* -- slots at their offsets ------------------------------------------------------------ */

static inline PyObject *slot(PyObject *obj, Py_ssize_t off) {
    PyObject *v = *(PyObject **)((char *)obj + off);
    if (v == NULL) PyErr_SetString(PyExc_AttributeError, "a room's slot is unset");
    return v; /* borrowed */
}

/* Set a slot to `v` (a new reference, stolen). */
static inline void slot_put(PyObject *obj, Py_ssize_t off, PyObject *v) {
    PyObject **p = (PyObject **)((char *)obj + off);
    PyObject *old = *p;
    *p = v;
    Py_XDECREF(old);
}

static inline int slot_add(PyObject *obj, Py_ssize_t off, PyObject *delta) {
    PyObject *v = slot(obj, off);
    if (v == NULL) return -1;
    PyObject *sum = PyNumber_Add(v, delta);
    if (sum == NULL) return -1;
    slot_put(obj, off, sum);
    return 0;
}

static inline int as_ll(PyObject *obj, long long *out) {
    if (obj == NULL) return -1;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) PyErr_SetString(PyExc_OverflowError, "past a 64-bit int");
    return (overflow || (*out == -1 && PyErr_Occurred())) ? -1 : 0;
}

static inline FlatMap *table(PyObject *obj, Py_ssize_t off) {
    PyObject *t = slot(obj, off);
    if (t != NULL && !Py_IS_TYPE(t, flat->type)) {
        PyErr_SetString(PyExc_TypeError, "a room's index is not a FlatMap");
        return NULL;
    }
    return (FlatMap *)t;
}

/* Python's // and % (floor), for the seconds of epoch milliseconds. */
static inline long long floor_div(long long a, long long b) {
    long long q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline long long floor_mod(long long a, long long b) {
    long long r = a % b;
    return (r != 0 && (r < 0) != (b < 0)) ? r + b : r;
}

/* -- rings of per-second counts (array.array of B, H or i) ------------------------------ */

/* ring[i] += delta. 0: done; 1: past the ring's type (nothing changed); -1: error. */
static int ring_add(PyObject *ring, Py_ssize_t i, int delta) {
    Py_buffer view;
    if (PyObject_GetBuffer(ring, &view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) return -1;
    int rc = 0;
    if (i < 0 || i >= view.len / view.itemsize) {
        PyErr_SetString(PyExc_IndexError, "a ring's slot past its end");
        rc = -1;
    } else if (view.format[0] == 'B' && view.itemsize == 1) {
        long v = ((uint8_t *)view.buf)[i] + delta;
        if (v < 0 || v > UINT8_MAX) rc = 1;
        else ((uint8_t *)view.buf)[i] = (uint8_t)v;
    } else if (view.format[0] == 'H' && view.itemsize == 2) {
        long v = ((uint16_t *)view.buf)[i] + delta;
        if (v < 0 || v > UINT16_MAX) rc = 1;
        else ((uint16_t *)view.buf)[i] = (uint16_t)v;
    } else if (view.format[0] == 'i' && view.itemsize == 4) {
        long long v = (long long)((int32_t *)view.buf)[i] + delta;
        if (v < INT32_MIN || v > INT32_MAX) rc = 1;
        else ((int32_t *)view.buf)[i] = (int32_t)v;
    } else {
        PyErr_SetString(PyExc_TypeError, "a ring is an array of B, H or i");
        rc = -1;
    }
    PyBuffer_Release(&view);
    return rc;
}

/* One more at ring slot i of obj's slot `off`; a ring past its type is widened in
 * Python (`_widened_plus_one`, which adds the one). */
static int ring_count(PyObject *obj, Py_ssize_t off, Py_ssize_t i) {
    PyObject *ring = slot(obj, off);
    if (ring == NULL) return -1;
    int rc = ring_add(ring, i, 1);
    if (rc <= 0) return rc;
    PyObject *index = PyLong_FromSsize_t(i);
    if (index == NULL) return -1;
    PyObject *wider = PyObject_CallFunctionObjArgs(widened_plus_one, ring, index, NULL);
    Py_DECREF(index);
    if (wider == NULL) return -1;
    slot_put(obj, off, wider);
    return 0;
}

static inline int is_true(PyObject *obj) { return obj == NULL ? -1 : PyObject_IsTrue(obj); }

/* obj.name(arg), or obj.name() when arg is NULL, for its effect: 0, or -1 on an error. */
static int call_for_effect(PyObject *obj, PyObject *name, PyObject *arg) {
    PyObject *r = arg == NULL ? PyObject_CallMethodNoArgs(obj, name)
                              : PyObject_CallMethodOneArg(obj, name, arg);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* An index loaded since its ring was counted (its `_stale` slot) is touched by its
 * Python `touch`, which recounts first. 1 when it was (*touched: what touch returned,
 * true or not), 0 when the index is not stale, -1 on an error. */
static int touch_if_stale(PyObject *index, Py_ssize_t stale_off, PyObject *key,
                          PyObject *second_obj, int *touched) {
    int stale = is_true(slot(index, stale_off));
    if (stale <= 0) return stale;
    PyObject *r = PyObject_CallMethodObjArgs(index, s_touch, key, second_obj, NULL);
    *touched = is_true(r);
    Py_XDECREF(r);
    return *touched < 0 ? -1 : 1;
}

/* obj's slot of an oldest second (None: nothing held) lowered to `second` (its int
 * object when the caller has one, else NULL). */
static int lower_oldest(PyObject *obj, Py_ssize_t off, long long second, PyObject *second_obj) {
    PyObject *oldest_obj = slot(obj, off);
    long long oldest = 0;
    if (oldest_obj == NULL || (oldest_obj != Py_None && as_ll(oldest_obj, &oldest) < 0)) return -1;
    if (oldest_obj != Py_None && second >= oldest) return 0;
    PyObject *lowered = second_obj != NULL ? Py_NewRef(second_obj) : PyLong_FromLongLong(second);
    if (lowered == NULL) return -1;
    slot_put(obj, off, lowered);
    return 0;
}

/* -- the room's parts ------------------------------------------------------------------ */

/* RecentIds.touch: 1 a new id, 0 a repeat, -1 an error. An id held at or before the
 * last expiry's cutoff has expired (lazily: not yet swept) and is held anew. */
static int ids_touch(PyObject *ids, PyObject *id, uint64_t key, long long second,
                     PyObject *second_obj) {
    int fresh, stale = touch_if_stale(ids, ids_off[I_STALE], id, second_obj, &fresh);
    if (stale != 0) return stale < 0 ? -1 : fresh;
    FlatMap *t = table(ids, ids_off[I_TABLE]);
    long long expired, cutoff = 0;
    if (t == NULL || as_ll(slot(ids, ids_off[I_EXPIRED]), &expired) < 0) return -1;
    if (expired && as_ll(slot(ids, ids_off[I_CUTOFF]), &cutoff) < 0) return -1;
    if (expired && second <= cutoff) { /* a very late id: sweep first, as Python does */
        if (call_for_effect(ids, s_sweep, NULL) < 0) return -1;
        expired = 0;
    }
    Py_ssize_t i = flat->slot_for_insert(t, key);
    if (i < 0) return -1;
    if (t->keys[i] != 0) {
        if (!expired || flat->val_at(t, i) > cutoff) return 0;
        PyObject *fewer = PyLong_FromLongLong(expired - 1);
        if (fewer == NULL) return -1;
        slot_put(ids, ids_off[I_EXPIRED], fewer);
    }
    if (flat->put(t, i, key, second) < 0) return -1;
    PyObject *oldest_obj = slot(ids, ids_off[I_OLDEST]);
    long long span, oldest;
    if (oldest_obj == NULL || as_ll(slot(ids, ids_off[I_SPAN]), &span) < 0) return -1;
    if (oldest_obj != Py_None) {
        if (as_ll(oldest_obj, &oldest) < 0) return -1;
        if (oldest <= second && second < oldest + span) {
            return ring_count(ids, ids_off[I_COUNTS], floor_mod(second, span)) < 0 ? -1 : 1;
        }
    }
    return call_for_effect(ids, s_place, second_obj) < 0 ? -1 : 1;
}

/* LastSeen.touch. */
static int seen_touch(PyObject *seen, PyObject *user, uint64_t key, long long second,
                      PyObject *second_obj) {
    int touched, stale = touch_if_stale(seen, seen_off[L_STALE], user, second_obj, &touched);
    if (stale != 0) return stale < 0 ? -1 : 0;
    FlatMap *t = table(seen, seen_off[L_TABLE]);
    if (t == NULL) return -1;
    Py_ssize_t i = flat->slot_for_insert(t, key);
    if (i < 0) return -1;
    int had = t->keys[i] != 0;
    int64_t prev = had ? flat->val_at(t, i) : 0;
    if ((!had || second > prev) && flat->put(t, i, key, second) < 0) return -1;
    long long span;
    if (as_ll(slot(seen, seen_off[L_SPAN]), &span) < 0) return -1;
    if (had) {
        if (prev >= second) return 0;
        PyObject *live = slot(seen, seen_off[L_LIVE]);
        int rc = live == NULL ? -1 : ring_add(live, floor_mod(prev, span), -1);
        if (rc == 1) PyErr_SetString(PyExc_OverflowError, "a ring's count below zero");
        if (rc != 0) return -1;
    }
    PyObject *windows = slot(seen, seen_off[L_WINDOWS]);
    if (windows == NULL) return -1;
    /* array('q'): [length, first second (INT64_MIN: not yet), count] a kept window */
    Py_buffer view;
    if (PyObject_GetBuffer(windows, &view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) return -1;
    if (view.itemsize != 8 || view.format == NULL || strcmp(view.format, "q") != 0 ||
        view.len % 24 != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "kept windows are an array('q') of threes");
        return -1;
    }
    int64_t *w = view.buf;
    for (Py_ssize_t k = 0; k < view.len / 8; k += 3) {
        if (w[k + 1] == INT64_MIN) continue;
        if (second >= w[k + 1] && (!had || prev < w[k + 1])) w[k + 2] += 1;
    }
    PyBuffer_Release(&view);
    if (ring_count(seen, seen_off[L_LIVE], floor_mod(second, span)) < 0) return -1;
    return lower_oldest(seen, seen_off[L_OLDEST], second, second_obj);
}

/* DistinctCount.add. */
static int distinct_add(PyObject *count, uint64_t key) {
    PyObject *exact = slot(count, distinct_off[D_EXACT]);
    if (exact == NULL) return -1;
    if (exact != Py_None) {
        FlatMap *t = table(count, distinct_off[D_EXACT]);
        if (t == NULL) return -1;
        Py_ssize_t i = flat->slot_for_insert(t, key);
        if (i < 0) return -1;
        if (t->keys[i] != 0) return 0;
        if (flat->put(t, i, key, 0) < 0) return -1;
        return t->used > exact_limit ? call_for_effect(count, s_to_sketch, NULL) : 0;
    }
    PyObject *registers = slot(count, distinct_off[D_REGISTERS]);
    if (registers == NULL) return -1;
    Py_ssize_t index = (Py_ssize_t)(key >> rest_bits);
    if (!PyByteArray_Check(registers) || index >= PyByteArray_GET_SIZE(registers)) {
        PyErr_SetString(PyExc_TypeError, "a sketch's registers are a bytearray of 2**p");
        return -1;
    }
    uint64_t rest = key & ((UINT64_C(1) << rest_bits) - 1);
    int bits = rest ? 64 - __builtin_clzll(rest) : 0;
    int rank = rest_bits - bits + 1;
    unsigned char *reg = (unsigned char *)PyByteArray_AS_STRING(registers);
    int old = reg[index];
    if (rank <= old) return 0;
    reg[index] = (unsigned char)rank;
    PyObject *changed = slot(count, distinct_off[D_CHANGED]);
    if (changed == NULL) return -1;
    if (changed == Py_None) {
        changed = PySet_New(NULL);
        if (changed == NULL) return -1;
        slot_put(count, distinct_off[D_CHANGED], changed);
    }
    PyObject *index_obj = PyLong_FromSsize_t(index);
    if (index_obj == NULL) return -1;
    int rc = PySet_Add(changed, index_obj);
    Py_DECREF(index_obj);
    if (rc < 0) return -1;
    PyObject *inverse = slot(count, distinct_off[D_INVERSE]);
    if (inverse == NULL) return -1;
    double sum = PyFloat_AsDouble(inverse);
    if (sum == -1.0 && PyErr_Occurred()) return -1;
    PyObject *new_sum = PyFloat_FromDouble(sum + (ldexp(1.0, -rank) - ldexp(1.0, -old)));
    if (new_sum == NULL) return -1;
    slot_put(count, distinct_off[D_INVERSE], new_sum);
    if (old == 0) {
        PyObject *zeros = slot(count, distinct_off[D_ZEROS]);
        if (zeros == NULL || (zeros = PyNumber_Subtract(zeros, one)) == NULL) return -1;
        slot_put(count, distinct_off[D_ZEROS], zeros);
    }
    return 0;
}

enum { PRESENT, LEAVE };
#define ABSENT_WORD (-1) /* _flat.ABSENT_WORD: in Presence.before, no settled word */

/* Presence.word: the word joins the pending ones (for the settled timeline), and the
 * latest word of the user decides (a leave wins a tie). A user whose latest word changes
 * keeps the settled one in `before` (ABSENT_WORD: none), unless already there. */
static int presence_word(PyObject *presence, uint64_t key, long long ts, int word) {
    FlatMap *t = table(presence, presence_off[P_AT]);
    FlatMap *before = table(presence, presence_off[P_BEFORE]);
    PyObject *pending = slot(presence, presence_off[P_PENDING]);
    if (t == NULL || before == NULL || pending == NULL) return -1;
    if (!PyByteArray_Check(pending)) {
        PyErr_SetString(PyExc_TypeError, "Presence.pending is a bytearray");
        return -1;
    }
    int64_t value = word == LEAVE ? -ts : ts;
    Py_ssize_t size = PyByteArray_GET_SIZE(pending);
    if (PyByteArray_Resize(pending, size + 16) < 0) return -1;
    unsigned char *entry = (unsigned char *)PyByteArray_AS_STRING(pending) + size;
    uint64_t raw_value = (uint64_t)value;
    for (int b = 0; b < 8; b++) {
        entry[b] = (unsigned char)(key >> (8 * b));
        entry[8 + b] = (unsigned char)(raw_value >> (8 * b));
    }
    Py_ssize_t i = flat->slot_for_insert(t, key);
    if (i < 0) return -1;
    int had = t->keys[i] != 0;
    int64_t prev = had ? flat->val_at(t, i) : 0;
    if (had) {
        int later = prev >= 0 ? (value >= 0 ? value > prev : ts >= prev) : ts > -prev;
        if (!later) return 0;
    }
    Py_ssize_t b = flat->slot_for_insert(before, key);
    if (b < 0) return -1;
    if (before->keys[b] == 0 && flat->put(before, b, key, had ? prev : ABSENT_WORD) < 0) return -1;
    if (flat->put(t, i, key, value) < 0) return -1;
    int delta = (value >= 0) - (had && prev >= 0);
    if (delta != 0) {
        PyObject *d = PyLong_FromLong(delta);
        int rc = d == NULL ? -1 : slot_add(presence, presence_off[P_ONLINE], d);
        Py_XDECREF(d);
        if (rc < 0) return -1;
    }
    return lower_oldest(presence, presence_off[P_OLDEST], floor_div(ts, 1000), NULL);
}

/* row[column] += delta (the row of one second's sums, a list). */
static inline int row_add(PyObject *row, long long column, PyObject *delta) {
    if (row == NULL) return 0;
    if (column < 0 || column >= PyList_GET_SIZE(row)) {
        PyErr_SetString(PyExc_IndexError, "a sums column past the row");
        return -1;
    }
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(row, column), delta);
    if (sum == NULL) return -1;
    PyList_SetItem(row, column, sum);
    return 0;
}

/* SecondSums.row: the hot row of `second`, marked changed (a new reference). */
static PyObject *sums_row(PyObject *sums, PyObject *second_obj) {
    PyObject *changed = slot(sums, sums_off[S_CHANGED]), *hot = slot(sums, sums_off[S_HOT]);
    if (changed == NULL || hot == NULL) return NULL;
    if (!PySet_Check(changed) || !PyDict_Check(hot)) {
        PyErr_SetString(PyExc_TypeError, "SecondSums holds a set and a dict");
        return NULL;
    }
    if (PySet_Add(changed, second_obj) < 0) return NULL;
    PyObject *row = PyDict_GetItemWithError(hot, second_obj);
    if (row != NULL) {
        if (!PyList_Check(row)) {
            PyErr_SetString(PyExc_TypeError, "a hot row is a list");
            return NULL;
        }
        return Py_NewRef(row);
    }
    if (PyErr_Occurred()) return NULL;
    long long width;
    if (as_ll(slot(sums, sums_off[S_WIDTH]), &width) < 0) return NULL;
    row = PyList_New((Py_ssize_t)width);
    if (row == NULL) return NULL;
    for (Py_ssize_t c = 0; c < width; c++) PyList_SET_ITEM(row, c, Py_NewRef(zero));
    if (PyDict_SetItem(hot, second_obj, row) < 0) {
        Py_DECREF(row);
        return NULL;
    }
    return row;
}

/* -- the fold ------------------------------------------------------------------------- */

static PyObject *typed(PyObject *obj, int kind) {
    if (obj != NULL && !Py_IS_TYPE(obj, classes[kind])) {
        PyErr_Format(PyExc_TypeError, "a room's part is not a %s", classes[kind]->tp_name);
        return NULL;
    }
    return obj;
}

/* The fold of one event of a known kind and shape; the result code, or -1. */
static long fold(PyObject *state, PyObject *const *items, long long kind, PyObject *sentiment,
                 uint64_t id_key, uint64_t user_key) {
    PyObject *ts_obj = items[layout[F_TS]], *user = items[layout[F_USER]];
    long long ts;
    if (as_ll(ts_obj, &ts) < 0) return -1;
    long long second = floor_div(ts, 1000);
    PyObject *second_obj = PyLong_FromLongLong(second), *row = NULL;
    long result = -1;
    if (second_obj == NULL) return -1;

    PyObject *ids = typed(slot(state, room_off[R_IDS]), K_IDS);
    int fresh = ids == NULL ? -1 : ids_touch(ids, items[layout[F_EVENT_ID]], id_key, second, second_obj);
    if (fresh <= 0) {
        result = fresh == 0 ? (long)layout[DUPLICATE] : -1;
        goto done;
    }
    long long watermark, lateness;
    if (as_ll(slot(state, room_off[R_WATERMARK]), &watermark) < 0) goto done;
    if (ts > watermark) {
        if (floor_div(ts, 1000) != floor_div(watermark, 1000)) {
            if (call_for_effect(state, s_advance, ts_obj) < 0) goto done;
            if (as_ll(slot(state, room_off[R_WATERMARK]), &watermark) < 0) goto done;
        } else {
            slot_put(state, room_off[R_WATERMARK], Py_NewRef(ts_obj));
            watermark = ts;
        }
    }
    if (as_ll(slot(state, room_off[R_LATENESS]), &lateness) < 0) goto done;
    int in_window = ts >= watermark - lateness;
    if (in_window) {
        PyObject *sums = typed(slot(state, room_off[R_SUMS]), K_SUMS);
        if (sums == NULL || (row = sums_row(sums, second_obj)) == NULL) goto done;
    }
    PyObject *presence = typed(slot(state, room_off[R_PRESENCE]), K_PRESENCE);
    if (presence == NULL) goto done;

    Py_ssize_t counter, users, recent;
    long long column;
    if (kind == layout[VIEW]) {
        int enter = is_true(items[layout[F_VIEW_ENTER]]);
        if (enter < 0) goto done;
        if (!enter) {
            if (presence_word(presence, user_key, ts, LEAVE) < 0) goto done;
            goto applied;
        }
        if (slot_add(state, room_off[R_VIEWS], one) < 0) goto done;
        PyObject *viewers = typed(slot(state, room_off[R_VIEWERS]), K_DISTINCT);
        if (viewers == NULL || distinct_add(viewers, user_key) < 0) goto done;
        if (presence_word(presence, user_key, ts, PRESENT) < 0) goto done;
        if (row == NULL) goto applied;
        if (row_add(row, layout[C_VIEWS], one) < 0) goto done;
        recent = room_off[R_RECENT_VIEWERS];
        goto touch_recent;
    }
    if (presence_word(presence, user_key, ts, PRESENT) < 0) goto done;
    if (kind == layout[COMMENT]) {
        if (slot_add(state, room_off[R_COMMENTS], one) < 0) goto done;
        PyObject *commenters = typed(slot(state, room_off[R_COMMENTERS]), K_DISTINCT);
        if (commenters == NULL || distinct_add(commenters, user_key) < 0) goto done;
        PyObject *negative = zero;
        if (sentiment != Py_None) {
            negative = PyFloat_AS_DOUBLE(sentiment) <= negative_at ? one : zero;
            if (slot_add(state, room_off[R_SCORED], one) < 0 ||
                slot_add(state, room_off[R_NEGATIVE], negative) < 0 ||
                slot_add(state, room_off[R_SCORE_SUM], sentiment) < 0)
                goto done;
        }
        if (row == NULL) goto applied;
        if (row_add(row, layout[C_COMMENTS], one) < 0) goto done;
        PyObject *seen = typed(slot(state, room_off[R_RECENT_COMMENTERS]), K_SEEN);
        if (seen == NULL || seen_touch(seen, user, user_key, second, second_obj) < 0) goto done;
        if (sentiment != Py_None &&
            (row_add(row, layout[C_SCORED], one) < 0 ||
             row_add(row, layout[C_NEGATIVE], negative) < 0 ||
             row_add(row, layout[C_SCORE_SUM], sentiment) < 0))
            goto done;
        goto applied;
    }
    if (kind == layout[CART]) {
        counter = room_off[R_CARTS], users = room_off[R_CARTERS], column = layout[C_CARTS];
        recent = room_off[R_RECENT_CARTERS];
    } else if (kind == layout[ORDER]) {
        PyObject *amount = items[layout[F_ORDER_AMOUNT]];
        int paid = is_true(items[layout[F_ORDER_PAID]]);
        if (paid < 0) goto done;
        if (!paid) {
            if (slot_add(state, room_off[R_REFUNDS], one) < 0 ||
                slot_add(state, room_off[R_REFUND_AMOUNT], amount) < 0 ||
                row_add(row, layout[C_REFUNDS], amount) < 0)
                goto done;
            goto applied;
        }
        if (slot_add(state, room_off[R_ORDERS], one) < 0 ||
            slot_add(state, room_off[R_GMV], amount) < 0)
            goto done;
        PyObject *buyers = typed(slot(state, room_off[R_BUYERS]), K_DISTINCT);
        if (buyers == NULL || distinct_add(buyers, user_key) < 0) goto done;
        if (row == NULL) goto applied;
        if (row_add(row, layout[C_ORDERS], one) < 0 || row_add(row, layout[C_GMV], amount) < 0)
            goto done;
        recent = room_off[R_RECENT_BUYERS];
        goto touch_recent;
    } else {
        goto applied; /* a kind the room does not count */
    }
    /* a cart */
    if (slot_add(state, counter, one) < 0) goto done;
    PyObject *carters = typed(slot(state, users), K_DISTINCT);
    if (carters == NULL || distinct_add(carters, user_key) < 0) goto done;
    if (row == NULL) goto applied;
    if (row_add(row, column, one) < 0) goto done;
touch_recent: {
        PyObject *seen = typed(slot(state, recent), K_SEEN);
        if (seen == NULL || seen_touch(seen, user, user_key, second, second_obj) < 0) goto done;
    }
applied:
    result = (long)(in_window ? layout[APPLIED] : layout[LATE]);
done:
    Py_DECREF(second_obj);
    Py_XDECREF(row);
    return result;
}

/* One event into its room's state: the result code, or -1 on an error. An event of an
 * unexpected shape, or a score that is not a float, folds in `apply_python` (which
 * raises what it raises on a malformed event). */
static long apply_one(PyObject *state, PyObject *event, PyObject *sentiment) {
    PyObject *const *items;
    Py_ssize_t n;
    if (PyList_CheckExact(event)) {
        items = ((PyListObject *)event)->ob_item, n = PyList_GET_SIZE(event);
    } else if (PyTuple_CheckExact(event)) {
        items = ((PyTupleObject *)event)->ob_item, n = PyTuple_GET_SIZE(event);
    } else {
        goto python;
    }
    if (!Py_IS_TYPE(state, classes[K_ROOM]) || n <= layout[F_TS] || n <= layout[F_USER] ||
        n <= layout[F_EVENT_ID] || n <= layout[F_KIND] ||
        !PyLong_CheckExact(items[layout[F_KIND]]) || !PyLong_CheckExact(items[layout[F_TS]]) ||
        (sentiment != Py_None && !PyFloat_CheckExact(sentiment)))
        goto python;
    long long kind;
    if (as_ll(items[layout[F_KIND]], &kind) < 0) {
        PyErr_Clear();
        goto python;
    }
    if ((kind != layout[VIEW] && kind != layout[COMMENT] && kind != layout[CART] &&
         kind != layout[ORDER]) || /* another kind (spend): Python folds it */
        (kind == layout[VIEW] && n <= layout[F_VIEW_ENTER]) ||
        (kind == layout[ORDER] && (n <= layout[F_ORDER_AMOUNT] || n <= layout[F_ORDER_PAID])))
        goto python;
    uint64_t id_key, user_key;
    if (flat->key_of(items[layout[F_EVENT_ID]], &id_key) < 0 ||
        flat->key_of(items[layout[F_USER]], &user_key) < 0) {
        PyErr_Clear();
        goto python;
    }
    long result = fold(state, items, kind, sentiment, id_key, user_key);
    if (result >= 0 && result != layout[DUPLICATE] &&
        (kind == layout[CART] || (kind == layout[ORDER] && n > layout[F_ORDER_PAID]))) {
        /* the product list (streams.rooms.products), in Python: a cart add or an order */
        PyObject *r = PyObject_CallMethodObjArgs(state, s_note_product, event, NULL);
        if (r == NULL) return -1;
        Py_DECREF(r);
    }
    return result;
python:;
    PyObject *r = PyObject_CallMethodObjArgs(state, s_apply_python, event, sentiment, NULL);
    if (r == NULL) return -1;
    long code = PyLong_AsLong(r);
    Py_DECREF(r);
    return code == -1 && PyErr_Occurred() ? -1 : code;
}

/* apply(state, event, sentiment) -> APPLIED, LATE or DUPLICATE, as RoomState.apply. */
static PyObject *fold_apply(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "apply(state, event, sentiment)");
        return NULL;
    }
    if (!ready) {
        PyErr_SetString(PyExc_RuntimeError, "_fold.setup was not called");
        return NULL;
    }
    long result = apply_one(args[0], args[1], args[2]);
    return result < 0 ? NULL : PyLong_FromLong(result);
}

/* -- a partition's group of events (RoomPartition._fold_python) ------------------------ */

enum { M_STATE, M_LAST_ACTIVE, M_DIRTY_EMIT, M_DIRTY_STATE, N_ROOM_RECORD };
static const char *record_names[N_ROOM_RECORD] = {"state", "last_active", "dirty_emit",
                                                  "dirty_state"};
static Py_ssize_t record_off[N_ROOM_RECORD];
static PyTypeObject *room_record; /* streams.rooms.partition.Room */
static long long f_room, f_comment_text;
static PyObject *s_rooms, *s_observer, *s_watermark_ms, *s_new_room, *s_comment, *s_applied,
    *s_late, *s_duplicates, *s_event_ts;

/* list[i] += 1 for a list of ints (an Outcome's counts by kind). */
static int count_up(PyObject *list, long long i) {
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(list, i), one);
    if (sum == NULL) return -1;
    PyList_SetItem(list, i, sum);
    return 0;
}

/* Whether every event of a group has the shape the loop below reads without checks:
 * a list or tuple, an int kind that indexes the outcome's counts, an int time, a
 * comment's text. A group with anything else folds in Python. */
static int plain_group(PyObject *events, Py_ssize_t kinds) {
    if (!PyList_CheckExact(events)) return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
        PyObject *event = PyList_GET_ITEM(events, i);
        Py_ssize_t n;
        if (PyList_CheckExact(event)) n = PyList_GET_SIZE(event);
        else if (PyTuple_CheckExact(event)) n = PyTuple_GET_SIZE(event);
        else return 0;
        if (n <= f_room || n <= layout[F_KIND] || n <= layout[F_TS]) return 0;
        PyObject *kind_obj = PySequence_Fast_GET_ITEM(event, layout[F_KIND]);
        if (!PyLong_CheckExact(kind_obj) ||
            !PyLong_CheckExact(PySequence_Fast_GET_ITEM(event, layout[F_TS])))
            return 0;
        int overflow;
        long long kind = PyLong_AsLongLongAndOverflow(kind_obj, &overflow);
        if (overflow || kind < 0 || kind >= kinds) return 0;
        if (kind == layout[COMMENT] && n <= f_comment_text) return 0;
    }
    return 1;
}

/* fold_group(partition, events, now, outcome, score) -> False if the group is not
 * plain (the caller folds it in Python), else True once folded. */
static PyObject *fold_group(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "fold_group(partition, events, now, outcome, score)");
        return NULL;
    }
    if (!ready || room_record == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fold.setup_partition was not called");
        return NULL;
    }
    PyObject *partition = args[0], *events = args[1], *now = args[2], *outcome = args[3],
             *score = args[4];
    PyObject *rooms = NULL, *observer = NULL, *applied = NULL, *late = NULL,
             *duplicates = NULL, *event_ts = NULL, *watermark_obj = NULL, *out = NULL;
    if ((rooms = PyObject_GetAttr(partition, s_rooms)) == NULL ||
        (observer = PyObject_GetAttr(partition, s_observer)) == NULL ||
        (watermark_obj = PyObject_GetAttr(partition, s_watermark_ms)) == NULL ||
        (applied = PyObject_GetAttr(outcome, s_applied)) == NULL ||
        (late = PyObject_GetAttr(outcome, s_late)) == NULL ||
        (duplicates = PyObject_GetAttr(outcome, s_duplicates)) == NULL ||
        (event_ts = PyObject_GetAttr(outcome, s_event_ts)) == NULL)
        goto done;
    Py_ssize_t kinds = 0;
    if (PyDict_CheckExact(rooms) && PyList_CheckExact(applied) && PyList_CheckExact(late) &&
        PyList_CheckExact(duplicates) && PyList_CheckExact(event_ts) &&
        PyLong_CheckExact(watermark_obj)) {
        kinds = PyList_GET_SIZE(applied);
        if (PyList_GET_SIZE(late) < kinds) kinds = PyList_GET_SIZE(late);
        if (PyList_GET_SIZE(duplicates) < kinds) kinds = PyList_GET_SIZE(duplicates);
    }
    if (kinds == 0 || !plain_group(events, kinds)) {
        out = Py_NewRef(Py_False);
        goto done;
    }
    long long watermark;
    if (as_ll(watermark_obj, &watermark) < 0) goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
        PyObject *event = PyList_GET_ITEM(events, i);
        PyObject *room_id = PySequence_Fast_GET_ITEM(event, f_room);
        PyObject *ts_obj = PySequence_Fast_GET_ITEM(event, layout[F_TS]);
        Py_INCREF(event); /* the callbacks below are Python: keep what is read */
        PyObject *room = PyDict_GetItemWithError(rooms, room_id), *sentiment = Py_None;
        Py_XINCREF(room);
        if (room == NULL && !PyErr_Occurred())
            room = PyObject_CallMethodObjArgs(partition, s_new_room, room_id, ts_obj, NULL);
        if (room == NULL || !Py_IS_TYPE(room, room_record)) {
            if (room != NULL) PyErr_SetString(PyExc_TypeError, "a partition's room is not a Room");
            Py_XDECREF(room);
            Py_DECREF(event);
            goto done;
        }
        Py_INCREF(sentiment);
        long long kind = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(event, layout[F_KIND]));
        long result = -1;
        if (kind == layout[COMMENT]) {
            PyObject *text = PySequence_Fast_GET_ITEM(event, f_comment_text);
            if (score != Py_None) {
                Py_SETREF(sentiment, PyObject_CallOneArg(score, text));
                if (sentiment == NULL) goto failed;
            }
            if (observer != Py_None) {
                PyObject *r =
                    PyObject_CallMethodObjArgs(observer, s_comment, room_id, ts_obj, text, NULL);
                if (r == NULL) goto failed;
                Py_DECREF(r);
            }
        }
        PyObject *state = *(PyObject **)((char *)room + record_off[M_STATE]);
        if (state == NULL) {
            PyErr_SetString(PyExc_AttributeError, "a Room without its state");
            goto failed;
        }
        result = apply_one(state, event, sentiment);
        if (result < 0) goto failed;
        if (result == layout[DUPLICATE]) {
            if (count_up(duplicates, kind) < 0) result = -1;
            goto next;
        }
        long long ts;
        if (count_up(applied, kind) < 0 || PyList_Append(event_ts, ts_obj) < 0 ||
            as_ll(ts_obj, &ts) < 0) {
            result = -1;
            goto next;
        }
        if (result == layout[LATE]) {
            if (count_up(late, kind) < 0) result = -1;
        } else if (ts > watermark) {
            watermark = ts;
            Py_SETREF(watermark_obj, Py_NewRef(ts_obj));
        }
        slot_put(room, record_off[M_LAST_ACTIVE], Py_NewRef(now));
        slot_put(room, record_off[M_DIRTY_EMIT], Py_NewRef(Py_True));
        slot_put(room, record_off[M_DIRTY_STATE], Py_NewRef(Py_True));
    next:
    failed:
        Py_XDECREF(sentiment);
        Py_DECREF(room);
        Py_DECREF(event);
        if (result < 0) goto done;
    }
    if (PyObject_SetAttr(partition, s_watermark_ms, watermark_obj) < 0) goto done;
    out = Py_NewRef(Py_True);
done:
    Py_XDECREF(rooms);
    Py_XDECREF(observer);
    Py_XDECREF(watermark_obj);
    Py_XDECREF(applied);
    Py_XDECREF(late);
    Py_XDECREF(duplicates);
    Py_XDECREF(event_ts);
    return out;
}

/* -- setup ---------------------------------------------------------------------------- */

static int offsets_of(PyTypeObject *cls, const char *const *names, int count, Py_ssize_t *out) {
    for (int k = 0; k < count; k++) {
        PyObject *descr = PyObject_GetAttrString((PyObject *)cls, names[k]);
        if (descr == NULL) return -1;
        int ok = PyObject_TypeCheck(descr, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (ok) out[k] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", cls->tp_name, names[k]);
            return -1;
        }
    }
    return 0;
}

/* setup(classes, layout, negative_at, exact_limit, rest_bits, widened_plus_one); all or
 * nothing: a setup that fails leaves the last one in place. */
static PyObject *fold_setup(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *class_tuple, *layout_tuple, *widen;
    double negative;
    Py_ssize_t limit;
    int bits;
    if (!PyArg_ParseTuple(args, "O!O!dniO", &PyTuple_Type, &class_tuple, &PyTuple_Type,
                          &layout_tuple, &negative, &limit, &bits, &widen))
        return NULL;
    if (PyTuple_GET_SIZE(class_tuple) != N_CLASSES || PyTuple_GET_SIZE(layout_tuple) != N_LAYOUT ||
        bits < 1 || bits > 63) {
        PyErr_Format(PyExc_ValueError, "setup takes %d classes and %d layout numbers",
                     N_CLASSES, N_LAYOUT);
        return NULL;
    }
    PyTypeObject *cls[N_CLASSES];
    for (int k = 0; k < N_CLASSES; k++) {
        PyObject *c = PyTuple_GET_ITEM(class_tuple, k);
        if (!PyType_Check(c)) {
            PyErr_SetString(PyExc_TypeError, "setup's classes are classes");
            return NULL;
        }
        cls[k] = (PyTypeObject *)c;
    }
    long long lay[N_LAYOUT];
    for (int k = 0; k < N_LAYOUT; k++) {
        if (as_ll(PyTuple_GET_ITEM(layout_tuple, k), &lay[k]) < 0) return NULL;
    }
    Py_ssize_t room[N_ROOM], ids[N_IDS], seen[N_SEEN], sums[N_SUMS], distinct[N_DISTINCT],
        presence[N_PRESENCE];
    if (offsets_of(cls[K_ROOM], room_names, N_ROOM, room) < 0 ||
        offsets_of(cls[K_IDS], ids_names, N_IDS, ids) < 0 ||
        offsets_of(cls[K_SEEN], seen_names, N_SEEN, seen) < 0 ||
        offsets_of(cls[K_SUMS], sums_names, N_SUMS, sums) < 0 ||
        offsets_of(cls[K_DISTINCT], distinct_names, N_DISTINCT, distinct) < 0 ||
        offsets_of(cls[K_PRESENCE], presence_names, N_PRESENCE, presence) < 0)
        return NULL;
    for (int k = 0; k < N_CLASSES; k++) Py_XSETREF(classes[k], (PyTypeObject *)Py_NewRef(cls[k]));
    memcpy(layout, lay, sizeof layout);
    memcpy(room_off, room, sizeof room_off);
    memcpy(ids_off, ids, sizeof ids_off);
    memcpy(seen_off, seen, sizeof seen_off);
    memcpy(sums_off, sums, sizeof sums_off);
    memcpy(distinct_off, distinct, sizeof distinct_off);
    memcpy(presence_off, presence, sizeof presence_off);
    negative_at = negative, exact_limit = limit, rest_bits = bits;
    Py_XSETREF(widened_plus_one, Py_NewRef(widen));
    ready = 1;
    Py_RETURN_NONE;
}

/* setup_partition(Room, room_field, comment_text_field) */
static PyObject *fold_setup_partition(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *cls;
    long long room_field, text_field;
    if (!PyArg_ParseTuple(args, "O!LL", &PyType_Type, &cls, &room_field, &text_field))
        return NULL;
    Py_ssize_t offsets[N_ROOM_RECORD];
    if (offsets_of((PyTypeObject *)cls, record_names, N_ROOM_RECORD, offsets) < 0) return NULL;
    memcpy(record_off, offsets, sizeof record_off);
    f_room = room_field, f_comment_text = text_field;
    Py_XSETREF(room_record, (PyTypeObject *)Py_NewRef(cls));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"apply", (PyCFunction)(void (*)(void))fold_apply, METH_FASTCALL,
     "apply(state, event, sentiment): RoomState.apply, in C."},
    {"fold_group", (PyCFunction)(void (*)(void))fold_group, METH_FASTCALL,
     "fold_group(partition, events, now, outcome, score): RoomPartition._fold, in C."},
    {"setup_partition", fold_setup_partition, METH_VARARGS,
     "setup_partition(Room, room_field, comment_text_field)."},
    {"setup", fold_setup, METH_VARARGS,
     "setup(classes, layout, negative_at, exact_limit, rest_bits, widened_plus_one)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fold", "A room's fold of one event, in C.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fold(void) {
    PyObject *flat_module = PyImport_ImportModule("streams.rooms._flat"); /* the capsule's */
    if (flat_module == NULL) return NULL;
    Py_DECREF(flat_module);
    flat = PyCapsule_Import(FLAT_CAPSULE, 0);
    if (flat == NULL) return NULL;
    one = PyLong_FromLong(1), zero = PyLong_FromLong(0);
    s_touch = PyUnicode_InternFromString("touch");
    s_sweep = PyUnicode_InternFromString("_sweep");
    s_place = PyUnicode_InternFromString("_place");
    s_to_sketch = PyUnicode_InternFromString("_to_sketch");
    s_advance = PyUnicode_InternFromString("_advance");
    s_apply_python = PyUnicode_InternFromString("apply_python");
    s_note_product = PyUnicode_InternFromString("note_product");
    s_rooms = PyUnicode_InternFromString("rooms");
    s_observer = PyUnicode_InternFromString("observer");
    s_watermark_ms = PyUnicode_InternFromString("watermark_ms");
    s_new_room = PyUnicode_InternFromString("_new_room");
    s_comment = PyUnicode_InternFromString("comment");
    s_applied = PyUnicode_InternFromString("applied");
    s_late = PyUnicode_InternFromString("late");
    s_duplicates = PyUnicode_InternFromString("duplicates");
    s_event_ts = PyUnicode_InternFromString("event_ts");
    if (!s_rooms || !s_observer || !s_watermark_ms || !s_new_room || !s_comment || !s_applied ||
        !s_late || !s_duplicates || !s_event_ts)
        return NULL;
    if (!one || !zero || !s_touch || !s_sweep || !s_place || !s_to_sketch || !s_advance || !s_apply_python ||
        !s_note_product)
        return NULL;
    return PyModule_Create(&module);
}

/* The flat table's layout, and what it lends to the room fold (`_fold.c`) through a
 * capsule: the fold updates a room's tables without a Python call per table. */
#ifndef LIVEROOM_FLAT_H
#define LIVEROOM_FLAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct {
    PyObject_HEAD
    uint64_t *keys; /* 0: empty */
    void *vals;     /* cap values of vbytes each (NULL when 0: every value is 0) */
    uint8_t *dirty; /* a bit a slot: set since the last take_changes() */
    int vbytes;     /* 0, 2, 4 or 8 */
    /* A value v is held as v - bias (v > 0) or v + bias (v < 0): with bias_slack set,
     * the first value into an empty table sets bias = |v| - bias_slack, so values of
     * epoch milliseconds within bias_slack of it fit 4 bytes. A value at or below the
     * bias in magnitude (far older) drops it: every value held as itself again. */
    int64_t bias, bias_slack;
    Py_ssize_t cap; /* slots: a multiple of 8 */
    uint64_t salt;  /* odd, the table's own: see home_of */
    Py_ssize_t used;
    Py_ssize_t ndirty;
    /* Keys marked dirty since the last take, in order (a key deleted since, or listed
     * twice, is skipped by its flag): a delta costs O(changes), not O(table). Listed only
     * while they are under 1/32 of the slots (past that the take scans the flags, and
     * `dover` says the list is incomplete); a list is let go at the take. Unbounded and
     * kept, the lists held 34 MB at 5,000 rooms (docs/performance.md). */
    uint64_t *dkeys;
    Py_ssize_t dlen, dcap;
    int dover;
} FlatMap;

/* streams.rooms._flat._C_API: the table's type and its key, lookup and store steps, as
 * FlatMap's own methods use them (a store marks the entry changed, for the delta). */
typedef struct {
    PyTypeObject *type;
    /* The key of a str (its MurmurHash64A, never 0) or a non-zero int; -1 on error. */
    int (*key_of)(PyObject *obj, uint64_t *out);
    /* The slot holding `key`, or the empty slot it would go to (no growth). */
    Py_ssize_t (*slot_of)(const FlatMap *t, uint64_t key);
    /* Like slot_of, growing the table first if an insert could overfill it; -1 on error. */
    Py_ssize_t (*slot_for_insert)(FlatMap *t, uint64_t key);
    /* Store `value` for `key` at slot i (from slot_for_insert); -1 on error. */
    int (*put)(FlatMap *t, Py_ssize_t i, uint64_t key, int64_t value);
    /* The value at an occupied slot. */
    int64_t (*val_at)(const FlatMap *t, Py_ssize_t i);
} FlatAPI;

#define FLAT_CAPSULE "streams.rooms._flat._C_API"

#endif

/* A room's per-user indexes as flat tables: a 64-bit key to a 64-bit value.
 *
 * Why C: at 5,000 rooms and 2M viewers the indexes held every user as dict entries of
 * interned strings (~300 bytes of Python objects a user, 1.7 GB), a restore parsed and
 * rebuilt millions of entries one object at a time (39 s), and a view's five lookups
 * missed the CPU cache in dicts of hundreds of thousands of keys. Here a user or event
 * id is hashed once (MurmurHash64A of its UTF-8 bytes, seed fixed: stable across
 * processes, so a restored table keeps counting the same users as the same) and lives
 * in one open-addressing table of keys and values at 58-90 % load, 82-90 % once past
 * 128 entries (linear probing: the keys are uniform hashes, and a busy table's probes
 * stay within a cache line or two). A table of any multiple of 8 slots: a key's probe
 * starts at its hash scaled to the table (the high bits of hash x salt x slots, see
 * home_of), so a table grows by half or a tenth, not double (see OVERFULL).
 *
 * A slot holds its 8-byte key, its value in the fewest bytes every value so far fits
 * (0: all zero, as a distinct count's set; 2: int16; 4: int32; 8: int64), and a bit for
 * "changed since the last delta": 8.1 to 16.1 bytes a slot where 8 + 8 + 1 took 17. A
 * table made with bias_slack holds values less a bias set by its first value: epoch
 * seconds within ~4.5 h of it in 2 bytes (the dedup index and the last-seen windows,
 * slack 2**14), presence's epoch milliseconds within ~12 days in 4. A value first
 * needing more widens the table (one pass); a drop that leaves every value within the
 * slack of the newest narrows it again with a new bias (narrow_after_drop), so a table
 * of the last minutes' seconds stays at 2 bytes however long the room lives. Entries
 * leave and return as raw bytes whatever the width (little-endian key, int64 value
 * pairs: 16 bytes), so a checkpoint copies memory and a restore copies it back.
 *
 * A 64-bit hash stands for the id: two of the 2M users of a busy night share one with
 * probability ~1e-7 (birthday bound), far inside SPEC's 2 % for distinct counts.
 *
 * FlatMap: get, set, add (insert if absent), raise_to (set if absent or greater), renew
 * (insert if absent or at or below a cutoff), __len__, __contains__, ==; take_changes()
 * -> bytes of the entries set since the last call; snapshot() -> bytes of every entry;
 * load(bytes, mode) applies entries (MODE_SET overwrites, MODE_MAX keeps the greater,
 * MODE_ADD keeps what is there; a load grows a table by half, compact() tightens it
 * after); drop_upto(cutoff, absolute) removes the entries whose value (or its absolute
 * value) is at or below cutoff, shrinking the table (and
 * narrowing its values if it can), and returns (removed, removed of them >= 0, the least
 * value kept or None); items(), value_range(), count_into(ring), count_nonneg(), nbytes.
 * Keys are str (hashed here) or int (a hash already). Not thread-safe; the GIL is held.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "_flat.h"

#define MODE_SET 0
#define MODE_MAX 1
#define MODE_ADD 2
#define ENTRY_BYTES 16
#define MIN_CAP 8 /* every table a multiple of 8: the changed bits fill whole bytes */
/* A table grows when an insert would fill more than 9/10 of its slots, by half (to
 * 58 %), or by a tenth past GROW_SLOWLY_FROM entries (cap_to_grow). Until 2026-12-07
 * it grew at 3/4 and doubled (37-75 %): the `memory` harness's tables held 215 MB at
 * 7/8 and doubling, 248 MB at 3/4, at the same fold speed. That evening, by an eighth
 * at 7/8: 27 MB less again; by a tenth at 9/10: 6 MB less still. The rebuilds cost the
 * fold while tables grow: `make bench`'s core fold ~15-20 % slower than by half at 9/10
 * (docs/measurements.md). */
#define OVERFULL(used, cap) ((used) * 10 > (cap) * 9)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint64_t load64le(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void store64le(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
#else
static inline uint64_t load64le(const unsigned char *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline void store64le(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
#endif

/* MurmurHash64A (Austin Appleby, public domain), bytes read little-endian. */
static uint64_t murmur64a(const unsigned char *data, size_t len) {
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    const int r = 47;
    uint64_t h = 0x2545F4914F6CDD1DULL ^ (len * m);
    const unsigned char *end = data + (len / 8) * 8;
    for (; data != end; data += 8) {
        uint64_t k = load64le(data);
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    switch (len & 7) {
        case 7: h ^= (uint64_t)data[6] << 48; /* fall through */
        case 6: h ^= (uint64_t)data[5] << 40; /* fall through */
        case 5: h ^= (uint64_t)data[4] << 32; /* fall through */
        case 4: h ^= (uint64_t)data[3] << 24; /* fall through */
        case 3: h ^= (uint64_t)data[2] << 16; /* fall through */
        case 2: h ^= (uint64_t)data[1] << 8;  /* fall through */
        case 1: h ^= (uint64_t)data[0]; h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

/* The key of a str (its hash; 0 is the empty slot, so it becomes 1) or of an int. */
static int key_of(PyObject *obj, uint64_t *out) {
    if (PyUnicode_Check(obj)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
        if (s == NULL) return -1;
        uint64_t h = murmur64a((const unsigned char *)s, (size_t)n);
        *out = h ? h : 1;
        return 0;
    }
    if (PyLong_Check(obj)) {
        uint64_t h = PyLong_AsUnsignedLongLong(obj);
        if (h == (uint64_t)-1 && PyErr_Occurred()) return -1;
        if (h == 0) {
            PyErr_SetString(PyExc_ValueError, "key 0 is reserved");
            return -1;
        }
        *out = h;
        return 0;
    }
    PyErr_SetString(PyExc_TypeError, "a FlatMap key is a str or a non-zero int");
    return -1;
}


/* The value as held (less the bias), and as given. */
static inline int64_t held_at(const FlatMap *t, Py_ssize_t i) {
    if (t->vbytes == 2) return ((const int16_t *)t->vals)[i];
    if (t->vbytes == 4) return ((const int32_t *)t->vals)[i];
    if (t->vbytes == 8) return ((const int64_t *)t->vals)[i];
    return 0;
}

static inline int64_t less_bias(int64_t v, int64_t bias) {
    return v > 0 ? v - bias : v < 0 ? v + bias : 0;
}

static inline int64_t held_of(const FlatMap *t, int64_t v) { return less_bias(v, t->bias); }

static inline int64_t val_at(const FlatMap *t, Py_ssize_t i) {
    int64_t h = held_at(t, i);
    return h > 0 ? h + t->bias : h < 0 ? h - t->bias : 0;
}

static inline void put_held(void *vals, int vbytes, Py_ssize_t i, int64_t h) {
    if (vbytes == 2) ((int16_t *)vals)[i] = (int16_t)h;
    else if (vbytes == 4) ((int32_t *)vals)[i] = (int32_t)h;
    else if (vbytes == 8) ((int64_t *)vals)[i] = h;
}

/* Store a value the width holds (see fit_value). */
static inline void val_put(FlatMap *t, Py_ssize_t i, int64_t v) {
    put_held(t->vals, t->vbytes, i, held_of(t, v));
}

static inline int is_dirty(const FlatMap *t, Py_ssize_t i) {
    return (t->dirty[i >> 3] >> (i & 7)) & 1;
}

static inline void mark_dirty(FlatMap *t, Py_ssize_t i) {
    t->dirty[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static inline void unmark_dirty(FlatMap *t, Py_ssize_t i) {
    t->dirty[i >> 3] &= (uint8_t)~(1u << (i & 7));
}

static inline int width_of(int64_t v) {
    if (v == 0) return 0;
    if (v >= INT16_MIN && v <= INT16_MAX) return 2;
    return v >= INT32_MIN && v <= INT32_MAX ? 4 : 8;
}

static void *alloc_vals(Py_ssize_t cap, int vbytes) {
    return vbytes ? PyMem_Calloc((size_t)cap, (size_t)vbytes) : NULL;
}

/* Hold every value anew, in `vbytes` bytes less `bias`: a wider width, the bias dropped
 * (0) when a value too old for it came, or a narrower width and a later bias once the
 * values that needed more have been dropped (narrow_after_drop). */
static int rehold(FlatMap *t, int vbytes, int64_t bias) {
    void *vals = alloc_vals(t->cap, vbytes);
    if (vals == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->cap; i++) {
        if (t->keys[i] != 0) put_held(vals, vbytes, i, less_bias(val_at(t, i), bias));
    }
    PyMem_Free(t->vals);
    t->vals = vals;
    t->vbytes = vbytes;
    t->bias = bias;
    return 0;
}

/* The bias a value of magnitude `size` sets in a table of its own: that much less the
 * slack (values up to the slack older, and later ones, fit the width it needs). */
static inline int64_t bias_from(const FlatMap *t, uint64_t size) {
    uint64_t slack = (uint64_t)t->bias_slack;
    return size > slack ? (int64_t)(size - slack) : 0;
}

/* Make the table's bias and width hold `v`. */
static inline int fit_value(FlatMap *t, int64_t v) {
    if (t->bias_slack && v != 0) {
        uint64_t size = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        if (t->used == 0) { /* nothing held: the bias is free to move */
            t->bias = bias_from(t, size);
        } else if (t->bias != 0 && size <= (uint64_t)t->bias && rehold(t, 8, 0) < 0) {
            return -1;
        }
    }
    int need = width_of(held_of(t, v));
    return need > t->vbytes ? rehold(t, need, t->bias) : 0;
}

/* Where `key`'s probe starts: its hash times the table's salt, scaled to the table (a
 * multiply, no power of two needed). The salt keeps two tables' slot orders apart: a
 * base is written in slot order and loaded in runs, and without it each run's keys
 * would share one stretch of the table loading them (linear probing turned quadratic: a
 * restore at 5,000 rooms took 191 s, docs/measurements.md). */
static inline Py_ssize_t home_of(const FlatMap *t, uint64_t key) {
    return (Py_ssize_t)(((unsigned __int128)(key * t->salt) * (uint64_t)t->cap) >> 64);
}

/* A table's salt: odd (a multiply by it permutes the keys), different for every table
 * of a process and between processes (a restored table must not order its keys as the
 * table that wrote the base did). SplitMix64 over a counter seeded at import. */
static uint64_t salt_state;

static uint64_t next_salt(void) {
    uint64_t z = (salt_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) | 1;
}

static inline Py_ssize_t next_slot(const FlatMap *t, Py_ssize_t i) {
    return i + 1 == t->cap ? 0 : i + 1;
}

static inline Py_ssize_t slot_of(const FlatMap *t, uint64_t key) {
    Py_ssize_t i = home_of(t, key);
    while (t->keys[i] != 0 && t->keys[i] != key) i = next_slot(t, i);
    return i;
}

static int alloc_arrays(FlatMap *t, Py_ssize_t cap) {
    uint64_t *keys = PyMem_Calloc((size_t)cap, sizeof(uint64_t));
    void *vals = alloc_vals(cap, t->vbytes);
    uint8_t *dirty = PyMem_Calloc((size_t)cap / 8, 1);
    if (!keys || (t->vbytes && !vals) || !dirty) {
        PyMem_Free(keys);
        PyMem_Free(vals);
        PyMem_Free(dirty);
        PyErr_NoMemory();
        return -1;
    }
    t->keys = keys;
    t->vals = vals;
    t->dirty = dirty;
    t->cap = cap;
    return 0;
}

/* Slots for n entries with room to grow by half again before the next resize: n at
 * 7/12 full, a multiple of 8. */
static Py_ssize_t cap_for(Py_ssize_t n) {
    Py_ssize_t cap = (n * 12 / 7 + 8) & ~(Py_ssize_t)7;
    if (cap < MIN_CAP) cap = MIN_CAP;
    while (OVERFULL(n + 1, cap)) cap += 8;
    return cap;
}

/* Slots for a full table of n entries to grow into: by half while small, by a tenth
 * (n at 9/11 full) from GROW_SLOWLY_FROM entries, so a big table runs 82-90 % full
 * rather than 58-90 %. The rebuilds that costs (each entry moved ~10 times as a table
 * grows, not ~2) are paid while tables grow: see OVERFULL. */
#define GROW_SLOWLY_FROM 128
static Py_ssize_t cap_to_grow(Py_ssize_t n) {
    if (n < GROW_SLOWLY_FROM) return cap_for(n);
    Py_ssize_t cap = (n * 11 / 9 + 8) & ~(Py_ssize_t)7;
    while (OVERFULL(n + 1, cap)) cap += 8;
    return cap;
}

/* Rebuild into `cap` slots for `keep` entries (growing, or shrinking after drops). */
static int rebuild_to(FlatMap *t, Py_ssize_t cap);
static int rebuild(FlatMap *t, Py_ssize_t keep) { return rebuild_to(t, cap_for(keep)); }
static int rebuild_to(FlatMap *t, Py_ssize_t cap) {
    FlatMap old = *t;
    if (alloc_arrays(t, cap) < 0) {
        t->keys = old.keys, t->vals = old.vals, t->dirty = old.dirty, t->cap = old.cap;
        return -1;
    }
    t->used = 0;
    t->ndirty = 0;
    uint64_t *okeys = old.keys;
    void *ovals = old.vals;
    uint8_t *odirty = old.dirty;
    for (Py_ssize_t i = 0; i < old.cap; i++) {
        if (okeys[i] == 0) continue;
        Py_ssize_t j = slot_of(t, okeys[i]);
        t->keys[j] = okeys[i];
        put_held(t->vals, t->vbytes, j, held_at(&old, i));
        if (is_dirty(&old, i)) {
            mark_dirty(t, j);
            t->ndirty++;
        }
        t->used++;
    }
    PyMem_Free(okeys);
    PyMem_Free(ovals);
    PyMem_Free(odirty);
    return 0;
}

/* The slot for `key`, growing the table first if an insert could overfill it. */
static Py_ssize_t slot_for_insert(FlatMap *t, uint64_t key) {
    if (OVERFULL(t->used + 1, t->cap)) {
        Py_ssize_t i = slot_of(t, key);
        if (t->keys[i] == key) return i;
        if (rebuild_to(t, cap_to_grow(t->used + 1)) < 0) return -1;
    }
    return slot_of(t, key);
}

/* The change list's first size; it doubles up to the take's limit (list_fits). */
#define DLIST_START 8

/* Whether one more listed key keeps the list the faster way to a take: listed keys
 * are looked up one by one (a cache miss each), the flags are scanned in order. */
static inline int list_fits(const FlatMap *t) { return (t->dlen + 1) * 32 < t->cap; }

/* The list is let go at each take: a burst's list is not kept for the quiet after. */
static void forget_list(FlatMap *t) {
    t->ndirty = 0;
    t->dlen = 0;
    t->dover = 0;
    if (t->dcap > DLIST_START) {
        PyMem_Free(t->dkeys);
        t->dkeys = NULL;
        t->dcap = 0;
    }
}

static void clear_changes(FlatMap *t) {
    memset(t->dirty, 0, (size_t)t->cap / 8);
    forget_list(t);
}

/* Write the entry of slot i at *p (little-endian key, value) and move *p past it. */
static inline void emit(const FlatMap *t, Py_ssize_t i, unsigned char **p) {
    store64le(*p, t->keys[i]);
    store64le(*p + 8, (uint64_t)val_at(t, i));
    *p += ENTRY_BYTES;
}

static inline int put(FlatMap *t, Py_ssize_t i, uint64_t key, int64_t value) {
    if (fit_value(t, value) < 0) return -1;
    if (!is_dirty(t, i)) {
        if (t->dover || !list_fits(t)) {
            t->dover = 1; /* the take scans the flags */
        } else {
            if (t->dlen == t->dcap) {
                Py_ssize_t dcap = t->dcap ? t->dcap * 2 : DLIST_START;
                uint64_t *dkeys = PyMem_Realloc(t->dkeys, (size_t)dcap * sizeof(uint64_t));
                if (dkeys == NULL) {
                    PyErr_NoMemory();
                    return -1;
                }
                t->dkeys = dkeys;
                t->dcap = dcap;
            }
            t->dkeys[t->dlen++] = key;
        }
        mark_dirty(t, i);
        t->ndirty++;
    }
    if (t->keys[i] == 0) {
        t->keys[i] = key;
        t->used++;
    }
    val_put(t, i, value);
    return 0;
}

/* FlatMap(*, bias_slack=0): see FlatMap.bias. */
static PyObject *FlatMap_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"bias_slack", NULL};
    long long slack = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$L", kwlist, &slack)) return NULL;
    if (slack < 0 || slack > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "bias_slack is 0 (none) to 2**31 - 1");
        return NULL;
    }
    FlatMap *t = (FlatMap *)type->tp_alloc(type, 0);
    if (t == NULL) return NULL;
    t->bias_slack = slack;
    t->salt = next_salt();
    if (alloc_arrays(t, MIN_CAP) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

static void FlatMap_dealloc(FlatMap *t) {
    PyMem_Free(t->keys);
    PyMem_Free(t->vals);
    PyMem_Free(t->dirty);
    PyMem_Free(t->dkeys);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyObject *FlatMap_get(FlatMap *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(key, default=None)");
        return NULL;
    }
    uint64_t key;
    if (key_of(args[0], &key) < 0) return NULL;
    Py_ssize_t i = slot_of(t, key);
    if (t->keys[i] == 0) {
        PyObject *dflt = nargs == 2 ? args[1] : Py_None;
        return Py_NewRef(dflt);
    }
    return PyLong_FromLongLong(val_at(t, i));
}

/* PyLong_AsLongLong, without its slow path: in CPython 3.11 an int of two or more
 * 30-bit digits (every epoch millisecond) goes through _PyLong_AsByteArray, ~100
 * instructions; the overflow-reporting variant reads the digits directly. */
static inline int64_t as_int64(PyObject *obj) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "a FlatMap value is a 64-bit signed int");
        return -1;
    }
    return v;
}

static int parse_key_value(PyObject *const *args, Py_ssize_t nargs, const char *sig,
                           uint64_t *key, int64_t *value, int64_t dflt) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, sig);
        return -1;
    }
    if (key_of(args[0], key) < 0) return -1;
    *value = dflt;
    if (nargs == 2) {
        *value = as_int64(args[1]);
        if (*value == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *FlatMap_set(FlatMap *t, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t key;
    int64_t value;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set(key, value)");
        return NULL;
    }
    if (parse_key_value(args, nargs, "set(key, value)", &key, &value, 0) < 0) return NULL;
    Py_ssize_t i = slot_for_insert(t, key);
    if (i < 0) return NULL;
    if (put(t, i, key, value) < 0) return NULL;
    Py_RETURN_NONE;
}

/* add(key, value=0) -> bool: insert if absent; True if it was inserted. */
static PyObject *FlatMap_add(FlatMap *t, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t key;
    int64_t value;
    if (parse_key_value(args, nargs, "add(key, value=0)", &key, &value, 0) < 0) return NULL;
    Py_ssize_t i = slot_for_insert(t, key);
    if (i < 0) return NULL;
    if (t->keys[i] != 0) Py_RETURN_FALSE;
    if (put(t, i, key, value) < 0) return NULL;
    Py_RETURN_TRUE;
}

/* renew(key, value, cutoff) -> 0 held with a value above cutoff (kept), 1 inserted, 2
 * held at or below cutoff (expired, not yet dropped) and set to value: the dedup
 * index's lookup while some of its ids have expired (streams.rooms.windows.RecentIds). */
static PyObject *FlatMap_renew(FlatMap *t, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t key;
    int64_t value, cutoff;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "renew(key, value, cutoff)");
        return NULL;
    }
    if (parse_key_value(args, 2, "renew(key, value, cutoff)", &key, &value, 0) < 0) return NULL;
    cutoff = as_int64(args[2]);
    if (cutoff == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t i = slot_for_insert(t, key);
    if (i < 0) return NULL;
    int held = t->keys[i] != 0;
    if (held && val_at(t, i) > cutoff) return PyLong_FromLong(0);
    if (put(t, i, key, value) < 0) return NULL;
    return PyLong_FromLong(held ? 2 : 1);
}

/* raise_to(key, value) -> the previous value or None: sets it if absent or lower. */
static PyObject *FlatMap_raise_to(FlatMap *t, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t key;
    int64_t value;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "raise_to(key, value)");
        return NULL;
    }
    if (parse_key_value(args, nargs, "raise_to(key, value)", &key, &value, 0) < 0) return NULL;
    Py_ssize_t i = slot_for_insert(t, key);
    if (i < 0) return NULL;
    if (t->keys[i] == 0) {
        if (put(t, i, key, value) < 0) return NULL;
        Py_RETURN_NONE;
    }
    int64_t prev = val_at(t, i);
    if (value > prev && put(t, i, key, value) < 0) return NULL;
    return PyLong_FromLongLong(prev);
}

static Py_ssize_t FlatMap_len(FlatMap *t) { return t->used; }

static int FlatMap_contains(FlatMap *t, PyObject *obj) {
    uint64_t key;
    if (key_of(obj, &key) < 0) return -1;
    return t->keys[slot_of(t, key)] != 0;
}

static PyObject *FlatMap_take_changes(FlatMap *t, PyObject *unused) {
    (void)unused;
    PyObject *out = PyBytes_FromStringAndSize(NULL, t->ndirty * ENTRY_BYTES);
    if (out == NULL) return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    if (!t->dover && t->dlen * 32 < t->cap) {
        /* Few changes: look each up (a cache miss each: ~30 slots of a scan). */
        for (Py_ssize_t k = 0; k < t->dlen; k++) {
            Py_ssize_t i = slot_of(t, t->dkeys[k]);
            if (t->keys[i] == 0 || !is_dirty(t, i)) continue; /* deleted since, or twice */
            emit(t, i, &p);
            unmark_dirty(t, i);
        }
    } else {
        /* Many: one sequential pass over the flags is faster than the lookups. */
        for (Py_ssize_t i = 0; i < t->cap; i++) {
            if (!is_dirty(t, i)) continue;
            emit(t, i, &p);
        }
        memset(t->dirty, 0, (size_t)t->cap / 8);
    }
    forget_list(t);
    return out;
}

static PyObject *FlatMap_snapshot(FlatMap *t, PyObject *unused) {
    (void)unused;
    PyObject *out = PyBytes_FromStringAndSize(NULL, t->used * ENTRY_BYTES);
    if (out == NULL) return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < t->cap; i++) {
        if (t->keys[i] != 0) emit(t, i, &p);
    }
    clear_changes(t);
    return out;
}

/* compact() -> bool: rebuild the table as full as inserts keep it (cap_to_grow), if it
 * is emptier: after a restore's loads, which grow by half. True if it was rebuilt. */
static PyObject *FlatMap_compact(FlatMap *t, PyObject *Py_UNUSED(ignored)) {
    Py_ssize_t want = cap_to_grow(t->used);
    if (want >= t->cap) Py_RETURN_FALSE;
    if (rebuild_to(t, want) < 0) return NULL;
    Py_RETURN_TRUE;
}

/* load(data: bytes-like, mode=MODE_SET): apply packed entries; leaves no change marked. */
static PyObject *FlatMap_load(FlatMap *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "load(data, mode=MODE_SET)");
        return NULL;
    }
    long mode = MODE_SET;
    if (nargs == 2) {
        mode = PyLong_AsLong(args[1]);
        if (mode == -1 && PyErr_Occurred()) return NULL;
    }
    if (mode < MODE_SET || mode > MODE_ADD) {
        PyErr_SetString(PyExc_ValueError, "mode is MODE_SET, MODE_MAX or MODE_ADD");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len % ENTRY_BYTES != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "packed entries are 16 bytes each");
        return NULL;
    }
    Py_ssize_t n = view.len / ENTRY_BYTES;
    /* By half, not as inserts grow: a restore loads a table in many deltas, and a tenth
     * would rebuild it every few of them; `compact` tightens it after. */
    if (OVERFULL(t->used + n, t->cap) && rebuild(t, t->used + n) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *p = view.buf;
    for (Py_ssize_t k = 0; k < n; k++, p += ENTRY_BYTES) {
        uint64_t key = load64le(p);
        int64_t value = (int64_t)load64le(p + 8);
        if (key == 0) continue;
        Py_ssize_t i = slot_of(t, key);
        int store = t->keys[i] == 0 || mode == MODE_SET ||
                    (mode == MODE_MAX && value > val_at(t, i));
        if (!store) continue;
        if (fit_value(t, value) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
        if (t->keys[i] == 0) {
            t->keys[i] = key;
            t->used++;
        }
        val_put(t, i, value);
    }
    PyBuffer_Release(&view);
    clear_changes(t);
    Py_RETURN_NONE;
}

/* drop_upto(cutoff, absolute=False) -> (removed, removed_nonneg, least kept or None). */
static inline int64_t llabs_i64(int64_t v) { return v < 0 ? -v : v; }

/* Empty slot `hole` by shifting back the entries of its cluster that may live there
 * (linear probing's deletion, no tombstones). The hole ends where the cluster does. */
static void delete_at(FlatMap *t, Py_ssize_t hole) {
    if (is_dirty(t, hole)) t->ndirty--;
    for (Py_ssize_t j = next_slot(t, hole); t->keys[j] != 0; j = next_slot(t, j)) {
        Py_ssize_t home = home_of(t, t->keys[j]);
        /* The entry at j stays if its home is cyclically within (hole, j]. */
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays) continue;
        t->keys[hole] = t->keys[j];
        put_held(t->vals, t->vbytes, hole, held_at(t, j));
        if (is_dirty(t, j)) mark_dirty(t, hole);
        else unmark_dirty(t, hole);
        hole = j;
    }
    t->keys[hole] = 0;
    unmark_dirty(t, hole);
    t->used--;
}

/* After a drop, hold the values kept (magnitudes from `lo`, the least non-zero, to `hi`)
 * in fewer bytes if a new bias fits them all: set from the newest as the first value
 * sets it (room for later values), or just below the least if they span more than the
 * slack (no held value may reach 0 or change sign). A table of seconds widens to 4
 * bytes when a value comes more than ~4.5 h after its bias, and narrows back here once
 * the older values have expired. */
static int narrow_after_drop(FlatMap *t, int64_t lo, int64_t hi) {
    if (!t->bias_slack || t->vbytes == 0 || hi == 0) return 0;
    int64_t bias = bias_from(t, (uint64_t)hi);
    if (bias >= lo) bias = lo - 1;
    int need = width_of(hi - bias);
    return need < t->vbytes ? rehold(t, need, bias) : 0;
}

/* After removals: a table under an eighth full is rebuilt to fit (a burst's slots are
 * not kept for the rest of the room's life). */
static int shrink_if_sparse(FlatMap *t) {
    return t->cap > MIN_CAP && t->used * 8 < t->cap ? rebuild(t, t->used) : 0;
}

/* The pass of drop_upto: entries at or below `cutoff` (by magnitude when `absolute`)
 * removed; counts and the least value kept (INT64_MAX when none). An entry removed whose
 * key `into` does not hold is added there (NULL: none). -1 on error. */
static int drop_pass(FlatMap *t, int64_t cutoff, int absolute, Py_ssize_t *removed_out,
                     Py_ssize_t *removed_nonneg_out, int64_t *least_out, FlatMap *into) {
    Py_ssize_t removed = 0, removed_nonneg = 0, start = 0;
    int64_t least = INT64_MAX, lo = INT64_MAX, hi = 0; /* magnitudes kept, for narrowing */
    while (t->keys[start] != 0) start++; /* the load factor leaves a tenth empty */
    for (Py_ssize_t n = 0; n < t->cap; n++) {
        Py_ssize_t i = start + n < t->cap ? start + n : start + n - t->cap;
        while (t->keys[i] != 0) { /* a deletion shifts the next entry here: look again */
            int64_t v = val_at(t, i), a = absolute ? llabs_i64(v) : v;
            if (a > cutoff) {
                int64_t size = llabs_i64(v);
                if (a < least) least = a;
                if (size && size < lo) lo = size;
                if (size > hi) hi = size;
                break;
            }
            if (into != NULL) {
                Py_ssize_t j = slot_for_insert(into, t->keys[i]);
                if (j < 0 || (into->keys[j] == 0 && put(into, j, t->keys[i], v) < 0)) return -1;
            }
            removed++;
            removed_nonneg += v >= 0;
            delete_at(t, i);
        }
    }
    if (shrink_if_sparse(t) < 0) return -1;
    if (narrow_after_drop(t, lo, hi) < 0) return -1;
    *removed_out = removed;
    *removed_nonneg_out = removed_nonneg;
    *least_out = least;
    return 0;
}

/* drop_upto(cutoff, absolute=False, into=None) -> (removed, removed_nonneg, least kept or
 * None). In place, one pass from an empty slot (so no cluster wraps past the start): an
 * entry shifted back into the slot being looked at is looked at again, one shifted back
 * to a later slot when the pass gets there. No allocation unless the table shrinks: the
 * busiest rooms drop entries every second. `into`: a table that keeps the entries
 * dropped whose keys it does not hold (presence's settled view, streams.rooms.presence). */
static PyObject *FlatMap_drop_upto(FlatMap *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "drop_upto(cutoff, absolute=False, into=None)");
        return NULL;
    }
    int64_t cutoff = as_int64(args[0]);
    if (cutoff == -1 && PyErr_Occurred()) return NULL;
    int absolute = nargs >= 2 ? PyObject_IsTrue(args[1]) : 0;
    if (absolute < 0) return NULL;
    FlatMap *into = NULL;
    if (nargs == 3 && args[2] != Py_None) {
        if (Py_TYPE(args[2]) != Py_TYPE(t) || args[2] == (PyObject *)t) {
            PyErr_SetString(PyExc_TypeError, "drop_upto: into is another FlatMap or None");
            return NULL;
        }
        into = (FlatMap *)args[2];
    }
    Py_ssize_t removed, removed_nonneg;
    int64_t least;
    if (drop_pass(t, cutoff, absolute, &removed, &removed_nonneg, &least, into) < 0) return NULL;
    if (t->used == 0) return Py_BuildValue("nnO", removed, removed_nonneg, Py_None);
    return Py_BuildValue("nnL", removed, removed_nonneg, (long long)least);
}

/* discard(key) -> bool: remove the key's entry; True if there was one. A delta does not
 * carry the removal (a restore repairs what it must: Presence.after_restore). */
static PyObject *FlatMap_discard(FlatMap *t, PyObject *key_obj) {
    uint64_t key;
    if (key_of(key_obj, &key) < 0) return NULL;
    Py_ssize_t i = slot_of(t, key);
    if (t->keys[i] == 0) Py_RETURN_FALSE;
    delete_at(t, i);
    Py_RETURN_TRUE;
}

/* -- presence's settled timeline (streams.rooms.presence.settle_python is the reference) */

typedef struct {
    uint64_t key;
    int64_t value; /* ms, negative for a leave */
} Word;

static inline int64_t word_ms(const Word *w) { return llabs_i64(w->value); }

static int word_order(const void *a, const void *b) {
    int64_t x = word_ms((const Word *)a), y = word_ms((const Word *)b);
    return (x > y) - (x < y);
}

/* The latest word wins; a leave wins a tie (presence.is_later). */
static inline int is_later(int64_t value, int64_t prev) {
    if (prev >= 0) return value >= 0 ? value > prev : -value >= prev;
    return llabs_i64(value) > -prev;
}

static inline int64_t floor_sec(int64_t ms) { return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000); }

/* The settled view: the room as of the settled time is `at` (every user's latest word)
 * except where `before` holds the user, with the word the settled time has for them, or
 * ABSENT_WORD for none. `before` holds exactly the users whose settled word differs
 * from their latest: those with words still pending, and for a few seconds those `at`
 * forgot (its expiry runs on the watermark, the view's on the settled time). */
#define ABSENT_WORD (-1) /* a leave 1 ms after the epoch: no real word (ts is within 24 h of now) */

typedef struct {
    FlatMap *at, *before;
    Py_ssize_t online, peak;
    int64_t second, oldest; /* second: the open one, 0 for none yet; oldest: INT64_MAX for none */
    PyObject *samples;      /* a list: second, online, ... */
} Settled;

/* Forget users a session timeout old as the settled time enters s->second. Only `before`
 * can hold them: `at` forgot them first, and a user it forgot is in `before`. One forgotten
 * who has a newer word in `at` (pending) stays as ABSENT_WORD; the others leave `before`.
 * The pass is drop_pass's (from an empty slot; a slot refilled by a shift looked at
 * again). */
static int settled_expire(Settled *s, int64_t horizon_s) {
    int64_t cutoff_s = s->second - horizon_s;
    if (s->oldest == INT64_MAX || s->oldest > cutoff_s) return 0;
    int64_t cutoff = (cutoff_s + 1) * 1000 - 1, least = INT64_MAX;
    FlatMap *t = s->before;
    Py_ssize_t start = 0;
    while (t->keys[start] != 0) start++; /* the load factor leaves a tenth empty */
    for (Py_ssize_t n = 0; n < t->cap; n++) {
        Py_ssize_t i = start + n < t->cap ? start + n : start + n - t->cap;
        while (t->keys[i] != 0) {
            int64_t v = val_at(t, i), a = llabs_i64(v);
            if (v == ABSENT_WORD) break;
            if (a > cutoff) {
                if (a < least) least = a;
                break;
            }
            s->online -= v >= 0;
            if (s->at->keys[slot_of(s->at, t->keys[i])] != 0) {
                if (put(t, i, t->keys[i], ABSENT_WORD) < 0) return -1;
                break;
            }
            delete_at(t, i);
        }
    }
    s->oldest = least == INT64_MAX ? INT64_MAX : floor_sec(least);
    return 0;
}

static int sample(Settled *s, int64_t second, Py_ssize_t online) {
    PyObject *a = PyLong_FromLongLong(second), *b = PyLong_FromSsize_t(online);
    int rc = a == NULL || b == NULL || PyList_Append(s->samples, a) < 0 ||
                     PyList_Append(s->samples, b) < 0
                 ? -1
                 : 0;
    Py_XDECREF(a);
    Py_XDECREF(b);
    return rc;
}

/* Sample every second before `target` and open `target` (settle_python.close_through). */
static int close_through(Settled *s, int64_t target, int64_t horizon_s) {
    if (s->second == 0) {
        s->second = target;
        return settled_expire(s, horizon_s);
    }
    while (s->second < target) {
        if (sample(s, s->second, s->online) < 0) return -1;
        if (s->online > s->peak) s->peak = s->online;
        s->second++;
        if (settled_expire(s, horizon_s) < 0) return -1;
        if (s->at->used == 0 && s->before->used == 0 && s->second < target) {
            if (sample(s, s->second, 0) < 0) return -1; /* nothing left: zeros until target */
            s->second = target;
        }
    }
    return 0;
}

/* One word into the settled view, in event-time order: it replaces the user's settled
 * word if later. The user leaves `before` when the view has caught up with `at`. */
static int settle_word(Settled *s, const Word *w, int64_t sec) {
    FlatMap *at = s->at, *before = s->before;
    Py_ssize_t b = slot_of(before, w->key), a = slot_of(at, w->key);
    int in_before = before->keys[b] != 0, in_at = at->keys[a] != 0;
    int64_t prev = in_before ? val_at(before, b) : in_at ? val_at(at, a) : ABSENT_WORD;
    int had = prev != ABSENT_WORD;
    if (had && !is_later(w->value, prev)) return 0;
    s->online += (w->value >= 0) - (had && prev >= 0);
    if (in_at && val_at(at, a) == w->value) {
        if (in_before) delete_at(before, b);
        return 0;
    }
    if (!in_before && (b = slot_for_insert(before, w->key)) < 0) return -1; /* may grow */
    if (put(before, b, w->key, w->value) < 0) return -1;
    if (s->oldest == INT64_MAX || sec < s->oldest) s->oldest = sec;
    return 0;
}

/* settle(at, before, words, upto_ms, horizon_s, online, second, oldest|None, peak)
 *   -> (online, second, oldest|None, peak, words kept, samples) */
static PyObject *settle(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 9 || Py_TYPE(args[0])->tp_dealloc != (destructor)FlatMap_dealloc ||
        Py_TYPE(args[1])->tp_dealloc != (destructor)FlatMap_dealloc || args[0] == args[1]) {
        PyErr_SetString(PyExc_TypeError, "settle(at, before, words, upto_ms, horizon_s, online, "
                                         "second, oldest, peak): two FlatMaps first");
        return NULL;
    }
    Settled s;
    s.at = (FlatMap *)args[0];
    s.before = (FlatMap *)args[1];
    int64_t upto = as_int64(args[3]), horizon_s = as_int64(args[4]);
    s.online = PyLong_AsSsize_t(args[5]);
    s.second = as_int64(args[6]);
    s.oldest = args[7] == Py_None ? INT64_MAX : as_int64(args[7]);
    s.peak = PyLong_AsSsize_t(args[8]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len % ENTRY_BYTES != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "words are whole 16-byte entries");
        return NULL;
    }
    Py_ssize_t n = view.len / ENTRY_BYTES, now = 0, kept = 0;
    Word *words = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Word));
    PyObject *rest = PyBytes_FromStringAndSize(NULL, view.len);
    s.samples = PyList_New(0);
    if (words == NULL || rest == NULL || s.samples == NULL) {
        PyBuffer_Release(&view);
        PyMem_Free(words);
        Py_XDECREF(rest);
        Py_XDECREF(s.samples);
        return PyErr_NoMemory();
    }
    const unsigned char *p = view.buf;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(rest);
    for (Py_ssize_t i = 0; i < n; i++, p += ENTRY_BYTES) {
        Word w = {load64le(p), (int64_t)load64le(p + 8)};
        if (word_ms(&w) < upto) {
            words[now++] = w;
        } else {
            memcpy(out + kept * ENTRY_BYTES, p, ENTRY_BYTES);
            kept++;
        }
    }
    PyBuffer_Release(&view);
    qsort(words, (size_t)now, sizeof(Word), word_order);
    int failed = 0;
    for (Py_ssize_t i = 0; i < now && !failed;) {
        int64_t ms = word_ms(&words[i]), sec = floor_sec(ms);
        if (sec > s.second && close_through(&s, sec, horizon_s) < 0) {
            failed = 1;
            break;
        }
        for (; i < now && word_ms(&words[i]) == ms; i++) {
            if (words[i].key != 0 && settle_word(&s, &words[i], sec) < 0) {
                failed = 1;
                break;
            }
        }
    }
    PyMem_Free(words);
    int64_t end = floor_sec(upto);
    if (!failed && end > s.second && close_through(&s, end, horizon_s) < 0) failed = 1;
    if (!failed && shrink_if_sparse(s.before) < 0) failed = 1; /* its users caught up */
    if (failed || _PyBytes_Resize(&rest, kept * ENTRY_BYTES) < 0) {
        Py_XDECREF(rest);
        Py_DECREF(s.samples);
        return NULL;
    }
    PyObject *oldest = s.oldest == INT64_MAX ? Py_NewRef(Py_None) : PyLong_FromLongLong(s.oldest);
    if (oldest == NULL) {
        Py_DECREF(rest);
        Py_DECREF(s.samples);
        return NULL;
    }
    return Py_BuildValue("nLNnNN", s.online, (long long)s.second, oldest, s.peak, rest, s.samples);
}

static PyObject *FlatMap_items(FlatMap *t, PyObject *unused) {
    (void)unused;
    PyObject *out = PyList_New(t->used);
    if (out == NULL) return NULL;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < t->cap; i++) {
        if (t->keys[i] == 0) continue;
        PyObject *pair = Py_BuildValue("KL", (unsigned long long)t->keys[i],
                                       (long long)val_at(t, i));
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, n++, pair);
    }
    return out;
}

/* value_range() -> (least, greatest) of the values, or None when empty. */
static PyObject *FlatMap_value_range(FlatMap *t, PyObject *unused) {
    (void)unused;
    if (t->used == 0) Py_RETURN_NONE;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (Py_ssize_t i = 0; i < t->cap; i++) {
        if (t->keys[i] == 0) continue;
        int64_t v = val_at(t, i);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    return Py_BuildValue("(LL)", (long long)lo, (long long)hi);
}

/* count_into(ring): ring[value % len(ring)] += 1 for every entry, ring an array("i")
 * (a restore recounts a room's per-second counts in one pass, no dict in between). */
static PyObject *FlatMap_count_into(FlatMap *t, PyObject *ring) {
    Py_buffer view;
    if (PyObject_GetBuffer(ring, &view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) return NULL;
    if (view.itemsize != (Py_ssize_t)sizeof(int) || view.format == NULL ||
        strcmp(view.format, "i") != 0 || view.len == 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "count_into(ring): ring must be a non-empty array('i')");
        return NULL;
    }
    int *slots = view.buf;
    int64_t n = (int64_t)(view.len / (Py_ssize_t)sizeof(int));
    for (Py_ssize_t i = 0; i < t->cap; i++) {
        if (t->keys[i] == 0) continue;
        int64_t r = val_at(t, i) % n;
        slots[r < 0 ? r + n : r] += 1; /* as Python's %, for a negative value */
    }
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *FlatMap_count_nonneg(FlatMap *t, PyObject *unused) {
    (void)unused;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < t->cap; i++) n += t->keys[i] != 0 && val_at(t, i) >= 0;
    return PyLong_FromSsize_t(n);
}

/* Bytes the table's arrays hold. */
static Py_ssize_t slot_bytes(const FlatMap *t) {
    return t->cap * (Py_ssize_t)(sizeof(uint64_t) + (size_t)t->vbytes) + t->cap / 8;
}

static PyObject *FlatMap_nbytes(FlatMap *t, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(slot_bytes(t));
}

static PyObject *FlatMap_value_bytes(FlatMap *t, void *closure) {
    (void)closure;
    return PyLong_FromLong(t->vbytes);
}

static PyObject *FlatMap_bias(FlatMap *t, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(t->bias);
}

static PyObject *FlatMap_richcompare(PyObject *a, PyObject *b, int op) {
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(b) != Py_TYPE(a)) Py_RETURN_NOTIMPLEMENTED;
    FlatMap *x = (FlatMap *)a, *y = (FlatMap *)b;
    int equal = x->used == y->used;
    for (Py_ssize_t i = 0; equal && i < x->cap; i++) {
        if (x->keys[i] == 0) continue;
        Py_ssize_t j = slot_of(y, x->keys[i]);
        equal = y->keys[j] != 0 && val_at(y, j) == val_at(x, i);
    }
    if (op == Py_NE) equal = !equal;
    return PyBool_FromLong(equal);
}

static PyObject *FlatMap_sizeof(FlatMap *t, PyObject *unused) {
    (void)unused;
    return PyLong_FromSsize_t((Py_ssize_t)sizeof(FlatMap) + slot_bytes(t) +
                              t->dcap * (Py_ssize_t)sizeof(uint64_t));
}

static PyMethodDef FlatMap_methods[] = {
    {"get", (PyCFunction)(void (*)(void))FlatMap_get, METH_FASTCALL, NULL},
    {"set", (PyCFunction)(void (*)(void))FlatMap_set, METH_FASTCALL, NULL},
    {"add", (PyCFunction)(void (*)(void))FlatMap_add, METH_FASTCALL, NULL},
    {"raise_to", (PyCFunction)(void (*)(void))FlatMap_raise_to, METH_FASTCALL, NULL},
    {"renew", (PyCFunction)(void (*)(void))FlatMap_renew, METH_FASTCALL, NULL},
    {"take_changes", (PyCFunction)FlatMap_take_changes, METH_NOARGS, NULL},
    {"snapshot", (PyCFunction)FlatMap_snapshot, METH_NOARGS, NULL},
    {"load", (PyCFunction)(void (*)(void))FlatMap_load, METH_FASTCALL, NULL},
    {"compact", (PyCFunction)FlatMap_compact, METH_NOARGS, NULL},
    {"drop_upto", (PyCFunction)(void (*)(void))FlatMap_drop_upto, METH_FASTCALL, NULL},
    {"discard", (PyCFunction)FlatMap_discard, METH_O, NULL},
    {"items", (PyCFunction)FlatMap_items, METH_NOARGS, NULL},
    {"value_range", (PyCFunction)FlatMap_value_range, METH_NOARGS, NULL},
    {"count_into", (PyCFunction)FlatMap_count_into, METH_O, NULL},
    {"count_nonneg", (PyCFunction)FlatMap_count_nonneg, METH_NOARGS, NULL},
    {"__sizeof__", (PyCFunction)FlatMap_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef FlatMap_getset[] = {
    {"nbytes", (getter)FlatMap_nbytes, NULL, "bytes the table's arrays hold", NULL},
    {"value_bytes", (getter)FlatMap_value_bytes, NULL, "bytes a value takes: 0, 2, 4 or 8", NULL},
    {"bias", (getter)FlatMap_bias, NULL, "what values are held less, in magnitude", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods FlatMap_as_sequence = {
    .sq_length = (lenfunc)FlatMap_len,
    .sq_contains = (objobjproc)FlatMap_contains,
};

static PyTypeObject FlatMapType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "streams.rooms._flat.FlatMap",
    .tp_basicsize = sizeof(FlatMap),
    .tp_dealloc = (destructor)FlatMap_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A flat table of 64-bit keys (str ids hashed) to 64-bit values.",
    .tp_new = FlatMap_new,
    .tp_methods = FlatMap_methods,
    .tp_getset = FlatMap_getset,
    .tp_as_sequence = &FlatMap_as_sequence,
    .tp_richcompare = FlatMap_richcompare,
    .tp_hash = PyObject_HashNotImplemented,
};

static PyObject *hash64(PyObject *module, PyObject *obj) {
    (void)module;
    uint64_t key;
    if (!PyUnicode_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "hash64(str)");
        return NULL;
    }
    if (key_of(obj, &key) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(key);
}

static PyMethodDef module_methods[] = {
    {"hash64", hash64, METH_O, "The 64-bit key FlatMap gives a str (never 0)."},
    {"settle", (PyCFunction)(void (*)(void))settle, METH_FASTCALL,
     "Presence's settled timeline: pending words applied in event-time order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_flat", "Flat tables for a room's per-user indexes.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

static Py_ssize_t slot_of_api(const FlatMap *t, uint64_t key) { return slot_of(t, key); }
static int64_t val_at_api(const FlatMap *t, Py_ssize_t i) { return val_at(t, i); }

static FlatAPI flat_api = {
    &FlatMapType, key_of, slot_of_api, slot_for_insert, put, val_at_api,
};

PyMODINIT_FUNC PyInit__flat(void) {
    if (PyType_Ready(&FlatMapType) < 0) return NULL;
    salt_state = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&salt_state;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *api = PyCapsule_New(&flat_api, FLAT_CAPSULE, NULL);
    int failed = api == NULL || PyModule_AddObjectRef(m, "_C_API", api) < 0;
    Py_XDECREF(api);
    if (failed || PyModule_AddObjectRef(m, "FlatMap", (PyObject *)&FlatMapType) < 0 ||
        PyModule_AddIntConstant(m, "MODE_SET", MODE_SET) < 0 ||
        PyModule_AddIntConstant(m, "MODE_MAX", MODE_MAX) < 0 ||
        PyModule_AddIntConstant(m, "MODE_ADD", MODE_ADD) < 0 ||
        PyModule_AddIntConstant(m, "ENTRY_BYTES", ENTRY_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "ABSENT_WORD", ABSENT_WORD) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

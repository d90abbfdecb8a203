/* The codec's fast path in C: pylvmetad.wire._ccodec.
 *
 * Rules of this file:
 *
 * - It is an accelerator, never the reference.  It implements exactly the
 *   fast path of codec.py (Parser._fast): the same subset of the syntax,
 *   the same tree, the same memos, and None wherever the Python fast path
 *   returns None (the general parser then runs).  tests/test_codec_accel.py
 *   checks both give identical results on the recorded traffic and under
 *   hypothesis; PYLVMETAD_PURE_PYTHON=1 turns this module off.
 * - No I/O, no global state beyond the Section type's descriptors given to
 *   configure() and a constant table of character classes.  The memos are
 *   the caller's (the Parser's dicts and its SpanMemo, whose hits return
 *   exactly what parsing the span gives; see "the span memo" below).  Texts
 *   whose characters do not all fit in one byte are left to Python (None).
 *
 * Theory of operation: one left-to-right pass over each piece of text with
 * an explicit stack of open sections (no recursion, no backtracking: time is
 * linear, scratch is the stack).  Units are the Python fast path's: "key {",
 * "key = atom", "key = [", list atoms and commas, "]", "}", separated by
 * blanks (space, \t, \n, \r, \v, \f) and comments.  A unit out of place, a
 * float, a quoted key or anything else outside the subset returns None.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

static PyObject *section_type;  /* codec.Section */
static PyObject *items_descr;   /* Section._items (a slot) */
static PyObject *raw_descr;     /* Section.raw (a slot) */

#define MAX_STACK 4096

/* character classes, one table look-up each (the tests of each class were calls per character) */
#define C_BLANK 1 /* space, \t, \n, \r, \v, \f */
#define C_KEY 2   /* A-Z a-z 0-9 _ . + - */
#define C_DELIM 4 /* what may follow a number: a blank or one of # = { } [ ] , " ' */
static unsigned char char_class[256];

static void init_classes(void) {
    for (int c = 0; c < 256; c++) {
        unsigned char k = 0;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') k |= C_BLANK | C_DELIM;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
            c == '+' || c == '-')
            k |= C_KEY;
        if (c == '#' || c == '=' || c == '{' || c == '}' || c == '[' || c == ']' || c == ',' || c == '"' || c == '\'')
            k |= C_DELIM;
        char_class[c] = k;
    }
}

static inline int is_blank(Py_UCS1 c) { return char_class[c] & C_BLANK; }

/* blanks and comments ("#" to the end of the line) */
static inline Py_ssize_t skip_blanks(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n) {
    while (i < n) {
        if (is_blank(s[i])) {
            i++;
        } else if (s[i] == '#') {
            while (i < n && s[i] != '\n') i++;
        } else {
            break;
        }
    }
    return i;
}

static inline int is_key_char(Py_UCS1 c) { return char_class[c] & C_KEY; }

/* what may follow a number (the Python pattern's negative look-ahead) */
static inline int ends_number(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n) {
    return i >= n || (char_class[s[i]] & C_DELIM);
}

static int set_slot(PyObject *descr, PyObject *obj, PyObject *value) {
    return Py_TYPE(descr)->tp_descr_set(descr, obj, value);
}

/* where Section's two slots are in its objects (configure: their member descriptors), -1 unknown */
static Py_ssize_t items_offset = -1, raw_offset = -1;

/* a new Section holding ``items`` (a new reference), or NULL */
static PyObject *new_section(PyObject *items) {
    PyTypeObject *type = (PyTypeObject *)section_type;
    PyObject *section = type->tp_alloc(type, 0);
    if (section == NULL) return NULL;
    if (items_offset >= 0 && raw_offset >= 0) {
        /* the descriptors' own stores, without their calls: tp_alloc zeroed both slots */
        *(PyObject **)((char *)section + items_offset) = Py_NewRef(items);
        *(PyObject **)((char *)section + raw_offset) = Py_NewRef(Py_None);
        return section;
    }
    if (set_slot(items_descr, section, items) < 0 || set_slot(raw_descr, section, Py_None) < 0) {
        Py_DECREF(section);
        return NULL;
    }
    return section;
}

/* Read a number at s[*i]: 1 and *value set, 0 if not the subset's form. */
static int read_int(const Py_UCS1 *s, Py_ssize_t *i, Py_ssize_t n, long long *value) {
    Py_ssize_t j = *i;
    int negative = 0;
    if (j < n && s[j] == '-') {
        negative = 1;
        j++;
    }
    if (j >= n || s[j] < '0' || s[j] > '9') return 0;
    long long v = 0;
    if (s[j] == '0') {
        j++;
    } else {
        Py_ssize_t start = j;
        while (j < n && s[j] >= '0' && s[j] <= '9' && j - start < 18) {
            v = v * 10 + (s[j] - '0');
            j++;
        }
    }
    if (!ends_number(s, j, n)) return 0; /* 19 digits, 0123, 5abc, 1.5: not the subset */
    *value = negative ? -v : v;
    *i = j;
    return 1;
}

/* Read a double-quoted string at s[*i] (the opening quote): a new str, Py_None
 * (borrowed, not the subset: unterminated), or NULL on error. */
static PyObject *read_string(const Py_UCS1 *s, Py_ssize_t *i, Py_ssize_t n) {
    Py_ssize_t start = *i + 1, j = start;
    int escapes = 0;
    while (j < n && s[j] != '"') {
        if (s[j] == '\\') {
            if (j + 1 >= n) return Py_None;
            escapes = 1;
            j += 2;
        } else {
            j++;
        }
    }
    if (j >= n) return Py_None;
    *i = j + 1;
    if (!escapes) return PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, s + start, j - start);
    /* only \" and \\ are undone; any other backslash stays, with what follows it */
    Py_UCS1 *buf = PyMem_Malloc(j - start);
    if (buf == NULL) return PyErr_NoMemory();
    Py_ssize_t out = 0;
    for (Py_ssize_t k = start; k < j; k++) {
        if (s[k] == '\\' && (s[k + 1] == '"' || s[k + 1] == '\\')) {
            buf[out++] = s[k + 1];
            k++;
        } else {
            buf[out++] = s[k];
        }
    }
    PyObject *str = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf, out);
    PyMem_Free(buf);
    return str;
}

typedef struct {
    PyObject *pairs, *keys;
    Py_ssize_t short_max, pairs_max, keys_max;
} Memos;

/* append (key, value) to items, shared through the pairs memo when ``share``; steals value.
 * Returns the pair appended (a new reference), or NULL. */
static PyObject *append_pair(PyObject *items, PyObject *key, PyObject *value, int share, Memos *m) {
    PyObject *pair = PyTuple_Pack(2, key, value);
    Py_DECREF(value);
    if (pair == NULL) return NULL;
    if (share) {
        if (PyDict_GET_SIZE(m->pairs) > m->pairs_max) PyDict_Clear(m->pairs);
        PyObject *shared = PyDict_SetDefault(m->pairs, pair, pair);
        if (shared == NULL) {
            Py_DECREF(pair);
            return NULL;
        }
        Py_INCREF(shared);
        Py_DECREF(pair);
        pair = shared;
    }
    if (PyList_Append(items, pair) < 0) {
        Py_DECREF(pair);
        return NULL;
    }
    return pair;
}

/* append (key, value) as append_pair does: 0, or -1 on error */
static int add_pair(PyObject *items, PyObject *key, PyObject *value, int share, Memos *m) {
    PyObject *pair = append_pair(items, key, value, share, m);
    if (pair == NULL) return -1;
    Py_DECREF(pair);
    return 0;
}

/* one string object per key name, through the keys memo: a new reference */
static PyObject *shared_key(const Py_UCS1 *s, Py_ssize_t start, Py_ssize_t end, Memos *m) {
    PyObject *key = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, s + start, end - start);
    if (key == NULL) return NULL;
    if (PyDict_GET_SIZE(m->keys) > m->keys_max) PyDict_Clear(m->keys);
    PyObject *shared = PyDict_SetDefault(m->keys, key, key);
    Py_XINCREF(shared);
    Py_DECREF(key);
    return shared;
}

/* ---- the span memo: a unit's source text -> the object it parses to (codec.Parser.spans) ----
 *
 * A small request repeats the same units message after message: a pv_found's
 * ``dev_size =67108864``, ``format ="lvm2"``, its section keys; a vg_update's
 * PV and LV lines.  Parsing one builds a key str, a value and a tuple and
 * looks each up in the Python memos (two dict probes, three hashes), about
 * 1.5 k instructions.  SpanMemo maps a unit's exact source characters to the
 * object they parse to: a ``key = atom`` statement's text (key to the
 * atom's last character, blanks included) to its shared (key, value) pair, a
 * key's text to its shared key str, a list's quoted string to its str.  A
 * unit's parse depends on its characters only (a key is its characters, a
 * string is undone by the same two escapes, an integer is its digits), so an
 * equal span gives an equal object: a hit returns what the parse would.  The
 * three kinds cannot be confused: a statement's span holds an "=", a key's
 * none, a string's starts with a quote.  Only what the Python memos would
 * share is kept (ints and strings of at most short_max characters, spans of
 * at most SPAN_MAX characters), in a direct-mapped table of SPAN_ENTRIES
 * slots (a new span takes its slot's place): the memory is fixed, and clear()
 * lets every object go.
 */
#define SPAN_ENTRIES 1024
#define SPAN_MAX 112

typedef struct {
    Py_hash_t hash;
    Py_ssize_t len;
    PyObject *obj; /* owned; NULL: an empty slot */
    Py_UCS1 text[SPAN_MAX];
} SpanEntry;

typedef struct {
    PyObject_HEAD
    SpanEntry *table;
    Py_ssize_t hits, misses;
} SpanMemo;

static PyTypeObject SpanMemoType;

/* a multiply-xorshift hash over the span, eight characters a step (FNV-1a, a character a step,
 * was ~5 instructions a character: most of a small request's look-ups); the length is mixed in,
 * and the last word is zero-padded, so spans that differ in any character or length differ in
 * their input words.  Only equal spans must hash alike: the table compares the text itself. */
static Py_hash_t span_hash(const Py_UCS1 *s, Py_ssize_t len) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)len;
    Py_ssize_t k = 0;
    for (; k + 8 <= len; k += 8) {
        uint64_t w;
        memcpy(&w, s + k, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    if (k < len) {
        uint64_t w = 0;
        memcpy(&w, s + k, (size_t)(len - k));
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
    }
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return (Py_hash_t)h;
}

/* the object kept for s[0:len] (borrowed), or NULL; *hash is set for span_store */
static PyObject *span_find(SpanMemo *memo, const Py_UCS1 *s, Py_ssize_t len, Py_hash_t *hash) {
    if (memo == NULL || len > SPAN_MAX) return NULL;
    Py_hash_t h = span_hash(s, len);
    *hash = h;
    SpanEntry *e = &memo->table[(Py_uhash_t)h & (SPAN_ENTRIES - 1)];
    if (e->obj != NULL && e->hash == h && e->len == len && memcmp(e->text, s, (size_t)len) == 0) {
        memo->hits++;
        return e->obj;
    }
    memo->misses++;
    return NULL;
}

/* keep obj for s[0:len] (hash from span_find), in place of whatever had its slot */
static void span_store(SpanMemo *memo, const Py_UCS1 *s, Py_ssize_t len, Py_hash_t hash, PyObject *obj) {
    if (memo == NULL || len > SPAN_MAX) return;
    SpanEntry *e = &memo->table[(Py_uhash_t)hash & (SPAN_ENTRIES - 1)];
    PyObject *old = e->obj;
    e->hash = hash;
    e->len = len;
    memcpy(e->text, s, (size_t)len);
    e->obj = Py_NewRef(obj);
    Py_XDECREF(old);
}

static PyObject *spans_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (!PyArg_ParseTuple(args, ":SpanMemo")) return NULL;
    SpanMemo *self = (SpanMemo *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->table = PyMem_Calloc(SPAN_ENTRIES, sizeof(SpanEntry));
    if (self->table == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void spans_drop(SpanMemo *self) {
    if (self->table == NULL) return;
    for (Py_ssize_t k = 0; k < SPAN_ENTRIES; k++) Py_CLEAR(self->table[k].obj);
}

static void spans_dealloc(SpanMemo *self) {
    spans_drop(self);
    PyMem_Free(self->table);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *spans_clear(SpanMemo *self, PyObject *unused) {
    spans_drop(self);
    Py_RETURN_NONE;
}

/* chars(): characters of request text held (each span, and the strings made of it) */
static PyObject *spans_chars(SpanMemo *self, PyObject *unused) {
    Py_ssize_t total = 0;
    for (Py_ssize_t k = 0; k < SPAN_ENTRIES; k++)
        if (self->table[k].obj != NULL) total += 2 * self->table[k].len;
    return PyLong_FromSsize_t(total);
}

/* stats(): (hits, misses) since it was made */
static PyObject *spans_stats(SpanMemo *self, PyObject *unused) {
    return Py_BuildValue("(nn)", self->hits, self->misses);
}

static PyMethodDef spans_methods[] = {
    {"clear", (PyCFunction)spans_clear, METH_NOARGS, "Let every kept object go."},
    {"chars", (PyCFunction)spans_chars, METH_NOARGS, "Characters of request text held."},
    {"stats", (PyCFunction)spans_stats, METH_NOARGS, "(hits, misses) so far."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SpanMemoType = {
    PyVarObject_HEAD_INIT(NULL, 0) /* the macro ends with its comma */
    .tp_name = "pylvmetad.wire._ccodec.SpanMemo",
    .tp_basicsize = sizeof(SpanMemo),
    .tp_dealloc = (destructor)spans_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SpanMemo(): a unit's source text -> its parsed object, a fixed table.",
    .tp_methods = spans_methods,
    .tp_new = spans_new,
};

/* the end of the string whose opening quote is s[i] (after its closing quote), or -1 */
static Py_ssize_t string_end(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n) {
    Py_ssize_t j = i + 1;
    while (j < n && s[j] != '"') {
        if (s[j] == '\\') {
            if (j + 1 >= n) return -1;
            j += 2;
        } else {
            j++;
        }
    }
    return j < n ? j + 1 : -1;
}

/* shared_key through the span memo: a key's text is looked up before any str is made */
static PyObject *memo_key(const Py_UCS1 *s, Py_ssize_t start, Py_ssize_t end, Memos *m, SpanMemo *spans) {
    Py_hash_t hash = 0;
    PyObject *key = span_find(spans, s + start, end - start, &hash);
    if (key != NULL) return Py_NewRef(key);
    key = shared_key(s, start, end, m);
    if (key != NULL) span_store(spans, s + start, end - start, hash, key);
    return key;
}

/* build(pieces, raws, pairs, keys, short_max, pairs_max, keys_max, max_depth, lazy_max_depth[, spans]):
 * the tree, None (not in the subset) or NotImplemented (a piece has wider characters: ask Python).
 * ``spans`` is the parser's SpanMemo, or None (no span memo). */
static PyObject *build(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *pieces, *raws;
    Memos m;
    Py_ssize_t max_depth, lazy_max_depth;
    SpanMemo *spans = NULL;
    if (nargs != 9 && nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "build() takes 9 or 10 arguments");
        return NULL;
    }
    if (!PyList_Check(args[0]) || !PyList_Check(args[1]) || !PyDict_Check(args[2]) || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "build(): pieces and raws must be lists, pairs and keys dicts");
        return NULL;
    }
    pieces = args[0];
    raws = args[1];
    m.pairs = args[2];
    m.keys = args[3];
    Py_ssize_t *sizes[5] = {&m.short_max, &m.pairs_max, &m.keys_max, &max_depth, &lazy_max_depth};
    for (int k = 0; k < 5; k++) {
        *sizes[k] = PyLong_AsSsize_t(args[4 + k]);
        if (*sizes[k] == -1 && PyErr_Occurred()) return NULL;
    }
    /* a SpanMemo of another copy of this module (tests load one) is no memo of ours: not used */
    if (nargs == 10 && Py_IS_TYPE(args[9], &SpanMemoType)) spans = (SpanMemo *)args[9];
    for (Py_ssize_t p = 0; p < PyList_GET_SIZE(raws); p++) {
        if (!PyUnicode_Check(PyList_GET_ITEM(raws, p))) {
            PyErr_SetString(PyExc_TypeError, "build(): raws must be strs");
            return NULL;
        }
    }
    if (section_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_ccodec.configure() was not called");
        return NULL;
    }
    if (max_depth + 2 > MAX_STACK) Py_RETURN_NONE;
    Py_ssize_t n_pieces = PyList_GET_SIZE(pieces), n_raws = PyList_GET_SIZE(raws);
    for (Py_ssize_t p = 0; p < n_pieces; p++) {
        PyObject *piece = PyList_GET_ITEM(pieces, p);
        if (!PyUnicode_Check(piece) || PyUnicode_KIND(piece) != PyUnicode_1BYTE_KIND) Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *root_items = PyList_New(0);
    if (root_items == NULL) return NULL;
    PyObject *root = new_section(root_items);
    Py_DECREF(root_items);
    if (root == NULL) return NULL;
    /* the open sections' children lists (borrowed: each is held by its section, held by the tree) */
    PyObject *stack[MAX_STACK];
    Py_ssize_t depth = 0; /* open sections below the root */
    stack[0] = root_items;
    PyObject *atoms = NULL, *list_key = NULL; /* the list being read and its key (owned) */
    int after_atom = 0;

    for (Py_ssize_t p = 0; p < n_pieces; p++) {
        PyObject *piece = PyList_GET_ITEM(pieces, p);
        const Py_UCS1 *s = PyUnicode_1BYTE_DATA(piece);
        Py_ssize_t n = PyUnicode_GET_LENGTH(piece), i = 0;
        for (;;) {
            i = skip_blanks(s, i, n);
            if (i >= n) break;
            Py_UCS1 c = s[i];
            if (atoms != NULL) { /* inside a list: atoms, commas, "]" */
                if (c == '"') {
                    Py_ssize_t end = string_end(s, i, n);
                    if (end < 0) goto not_subset;
                    Py_hash_t hash = 0;
                    PyObject *str = span_find(spans, s + i, end - i, &hash);
                    if (str != NULL) {
                        Py_INCREF(str);
                        i = end;
                    } else {
                        Py_ssize_t start = i;
                        str = read_string(s, &i, n);
                        if (str == NULL) goto error;
                        if (str == Py_None) goto not_subset;
                        if (PyUnicode_GET_LENGTH(str) <= m.short_max) span_store(spans, s + start, end - start, hash, str);
                    }
                    int r = PyList_Append(atoms, str);
                    Py_DECREF(str);
                    if (r < 0) goto error;
                    after_atom = 1;
                } else if (c == '-' || (c >= '0' && c <= '9')) {
                    long long v;
                    if (after_atom || !read_int(s, &i, n, &v)) goto not_subset;
                    PyObject *num = PyLong_FromLongLong(v);
                    if (num == NULL) goto error;
                    int r = PyList_Append(atoms, num);
                    Py_DECREF(num);
                    if (r < 0) goto error;
                    after_atom = 1;
                } else if (c == ',') {
                    if (!after_atom) goto not_subset;
                    after_atom = 0;
                    i++;
                } else if (c == ']') {
                    Py_ssize_t count = PyList_GET_SIZE(atoms);
                    if (!after_atom && count) goto not_subset; /* "[1,]": left to the general parser */
                    PyObject *value = atoms;
                    if (count == 1) {
                        value = PyList_GET_ITEM(atoms, 0);
                        Py_INCREF(value);
                        Py_DECREF(atoms);
                    }
                    atoms = NULL;
                    int r = add_pair(stack[depth], list_key, value, 0, &m);
                    Py_CLEAR(list_key);
                    if (r < 0) goto error;
                    i++;
                } else {
                    goto not_subset;
                }
                continue;
            }
            if (c == '}') {
                if (depth == 0) goto not_subset;
                depth--;
                i++;
                continue;
            }
            if (!is_key_char(c)) goto not_subset; /* a quoted key, an atom outside a list */
            Py_ssize_t key_start = i;
            while (i < n && is_key_char(s[i])) i++;
            Py_ssize_t key_end = i;
            i = skip_blanks(s, i, n);
            if (i >= n) goto not_subset;
            if (s[i] == '{') {
                if (depth + 1 > max_depth || stack[depth] == NULL) goto not_subset;
                PyObject *key = memo_key(s, key_start, key_end, &m, spans);
                if (key == NULL) goto error;
                PyObject *items = PyList_New(0);
                if (items == NULL) {
                    Py_DECREF(key);
                    goto error;
                }
                PyObject *child = new_section(items);
                Py_DECREF(items);
                if (child == NULL) {
                    Py_DECREF(key);
                    goto error;
                }
                int r = add_pair(stack[depth], key, child, 0, &m);
                Py_DECREF(key);
                if (r < 0) goto error;
                stack[++depth] = items;
                i++;
                continue;
            }
            if (s[i] != '=') goto not_subset;
            i++;
            i = skip_blanks(s, i, n);
            if (i >= n || stack[depth] == NULL) goto not_subset;
            c = s[i];
            if (c == '"' || c == '-' || (c >= '0' && c <= '9')) {
                /* key = atom: the whole statement's text may be in the span memo */
                Py_ssize_t end = i;
                long long v = 0;
                if (c == '"') {
                    end = string_end(s, i, n);
                    if (end < 0) goto not_subset;
                } else if (!read_int(s, &end, n, &v)) {
                    goto not_subset; /* checked before the memo: what follows a number matters */
                }
                Py_hash_t hash = 0;
                PyObject *pair = span_find(spans, s + key_start, end - key_start, &hash);
                if (pair != NULL) {
                    if (PyList_Append(stack[depth], pair) < 0) goto error;
                    i = end;
                    continue;
                }
                PyObject *key = memo_key(s, key_start, key_end, &m, spans);
                if (key == NULL) goto error;
                PyObject *value;
                int share = 1;
                if (c == '"') {
                    value = read_string(s, &i, n); /* not Py_None: string_end found its end */
                    if (value != NULL) share = PyUnicode_GET_LENGTH(value) <= m.short_max;
                } else {
                    value = PyLong_FromLongLong(v);
                    i = end;
                }
                pair = value == NULL ? NULL : append_pair(stack[depth], key, value, share, &m);
                Py_DECREF(key);
                if (pair == NULL) goto error;
                if (share) span_store(spans, s + key_start, end - key_start, hash, pair);
                Py_DECREF(pair);
                continue;
            }
            PyObject *key = memo_key(s, key_start, key_end, &m, spans);
            if (key == NULL) goto error;
            if (c == '[') {
                atoms = PyList_New(0);
                if (atoms == NULL) {
                    Py_DECREF(key);
                    goto error;
                }
                list_key = key;
                after_atom = 0;
                i++;
            } else {
                Py_DECREF(key);
                goto not_subset;
            }
        }
        if (p < n_raws) {
            /* the piece ended with the lazy section's "{": it is the innermost open section */
            if (atoms != NULL || depth < 1 || depth + lazy_max_depth > max_depth) goto not_subset;
            PyObject *parent = stack[depth - 1];
            if (parent == NULL || PyList_GET_SIZE(parent) == 0) goto not_subset;
            Py_ssize_t last = PyList_GET_SIZE(parent) - 1;
            PyObject *lazy = PyTuple_GET_ITEM(PyList_GET_ITEM(parent, last), 1);
            if (set_slot(raw_descr, lazy, PyList_GET_ITEM(raws, p)) < 0 || set_slot(items_descr, lazy, Py_None) < 0)
                goto error;
            stack[depth] = NULL; /* its list is gone: nothing may be added to it */
        }
    }
    if (depth != 0 || atoms != NULL || PyList_GET_SIZE(root_items) == 0) goto not_subset;
    return root;

not_subset:
    Py_XDECREF(atoms);
    Py_XDECREF(list_key);
    Py_DECREF(root);
    Py_RETURN_NONE;
error:
    Py_XDECREF(atoms);
    Py_XDECREF(list_key);
    Py_DECREF(root);
    return NULL;
}

/* ---- the canonical form of a lazy body (codec._lazy_body, the writer's own layout) ---- */

/* a number as the writer prints it, from s[i] to the next delimiter: its end, or -1 */
static Py_ssize_t canonical_number(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n) {
    Py_ssize_t j = i;
    while (j < n && !ends_number(s, j, n)) j++;
    Py_ssize_t len = j - i;
    const Py_UCS1 *t = s + i;
    if (len == 0) return -1;
    if (len == 1 && t[0] == '0') return j;
    Py_ssize_t k = 0;
    if (t[0] == '-') k = 1;
    /* integer: -?[1-9][0-9]{0,17} */
    if (k < len && t[k] >= '1' && t[k] <= '9') {
        Py_ssize_t d = k + 1;
        while (d < len && t[d] >= '0' && t[d] <= '9') d++;
        if (d == len) return (len - k) <= 18 ? j : -1;
    }
    /* float: -?(0|[1-9][0-9]{0,8})\.[0-9]{6} */
    Py_ssize_t d = k;
    if (d < len && t[d] == '0') {
        d++;
    } else if (d < len && t[d] >= '1' && t[d] <= '9') {
        d++;
        while (d < len && t[d] >= '0' && t[d] <= '9' && d - k < 9) d++;
    } else {
        return -1;
    }
    if (d >= len || t[d] != '.' || len - d - 1 != 6) return -1;
    for (Py_ssize_t e = d + 1; e < len; e++)
        if (t[e] < '0' || t[e] > '9') return -1;
    return j;
}

/* a string whose only escapes are \" and \\: its end, or -1 */
static Py_ssize_t canonical_string(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n) {
    Py_ssize_t j = i + 1;
    while (j < n && s[j] != '"') {
        if (s[j] == '\\') {
            if (j + 1 >= n || (s[j + 1] != '"' && s[j + 1] != '\\')) return -1;
            j += 2;
        } else {
            j++;
        }
    }
    return j < n ? j + 1 : -1;
}

static Py_ssize_t canonical_atom(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n) {
    if (i >= n) return -1;
    return s[i] == '"' ? canonical_string(s, i, n) : canonical_number(s, i, n);
}

/* a value: an atom, [] or a list of two or more atoms joined by bare commas */
static Py_ssize_t canonical_value(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n) {
    if (i < n && s[i] == '[') {
        if (i + 1 < n && s[i + 1] == ']') return i + 2;
        Py_ssize_t j = canonical_atom(s, i + 1, n);
        int atoms = 1;
        while (j >= 0 && j < n && s[j] == ',') {
            j = canonical_atom(s, j + 1, n);
            atoms++;
        }
        if (j < 0 || j >= n || s[j] != ']' || atoms < 2) return -1;
        return j + 1;
    }
    return canonical_atom(s, i, n);
}

static int tabs_at(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n, Py_ssize_t count) {
    if (i + count > n) return 0;
    for (Py_ssize_t k = 0; k < count; k++)
        if (s[i + k] != '\t') return 0;
    return 1;
}

#define LINES_END (-2)

/* One line of level ``level`` (see canonical_lines) at ``i``: where it ends (after its value, or
 * after the "}" of its section), LINES_END when ``i`` is not one of these lines, or -1. */
static Py_ssize_t canonical_line(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n, Py_ssize_t depth, Py_ssize_t level,
                                 Py_ssize_t levels);

/* The lines of level ``level`` of a lazy body whose head is indented ``depth`` TABs, as
 * codec._writer_body unrolls them for ``levels`` levels: level l < levels has its lines at
 * depth+l+1 TABs, each a key and "=" value or " {" the lines of level l+1 and a closing
 * line at its own indentation; the last level's lines are at depth+levels TABs and hold
 * values only.  Returns where the lines end (the "\n" of the closing line), or -1. */
static Py_ssize_t canonical_lines(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n, Py_ssize_t depth, Py_ssize_t level,
                                  Py_ssize_t levels) {
    for (;;) {
        Py_ssize_t e = canonical_line(s, i, n, depth, level, levels);
        if (e == LINES_END) return i; /* not one of these lines: the end */
        if (e < 0) return -1;
        i = e;
    }
}

static Py_ssize_t canonical_line(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n, Py_ssize_t depth, Py_ssize_t level,
                                 Py_ssize_t levels) {
    Py_ssize_t ind = level < levels ? depth + level + 1 : depth + levels;
    if (i >= n || s[i] != '\n' || !tabs_at(s, i + 1, n, ind)) return LINES_END;
    Py_ssize_t k = i + 1 + ind;
    if (k >= n || !is_key_char(s[k])) return LINES_END;
    while (k < n && is_key_char(s[k])) k++;
    if (k < n && s[k] == '=') return canonical_value(s, k + 1, n);
    if (level < levels && k + 1 < n && s[k] == ' ' && s[k + 1] == '{') {
        Py_ssize_t e = canonical_lines(s, k + 2, n, depth, level + 1, levels);
        if (e < 0 || e >= n || s[e] != '\n' || !tabs_at(s, e + 1, n, ind) || e + 1 + ind >= n || s[e + 1 + ind] != '}')
            return -1;
        return e + 1 + ind + 1;
    }
    return -1;
}

/* the body's closing line at ``e``: "\n", depth TABs, then "}" (looked at, not taken); the
 * body's end, or -1 */
static Py_ssize_t close_body(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t e, Py_ssize_t depth) {
    if (e < 0 || e >= n || s[e] != '\n' || !tabs_at(s, e + 1, n, depth) || e + 1 + depth >= n ||
        s[e + 1 + depth] != '}')
        return -1;
    return e + 1 + depth;
}

/* where the canonical body at ``start`` ends (before its "}"), or -1: lazy_body_end's answer
 * for a text of one-byte characters */
static Py_ssize_t canonical_body_end(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t start, Py_ssize_t depth,
                                     Py_ssize_t levels, Py_ssize_t endpos) {
    if (endpos < n) n = endpos;
    if (start < 0 || start > n || levels < 1) return -1;
    return close_body(s, n, canonical_lines(s, start, n, depth, 0, levels), depth);
}

/* ---- checking a body against one checked before ("per-line verification") ----
 *
 * A body that arrives again with one LV changed would be checked whole, character by character
 * (~10 instructions each).  The check is a left-to-right loop over the body's top lines
 * (canonical_lines at level 0) whose only state between lines is the position, and a line's
 * check reads only its own characters and the character after it (the next line's "\n", or the
 * "}" after the body's closing line).  So, given a body R the check accepted at the same depth
 * (a memo entry: only accepted bodies are remembered):
 *
 * - where the text agrees with R up to and including the start of one of R's top lines, the
 *   check of the text reaches that line's start exactly as the check of R did: it resumes there;
 * - where the text from a line start on is R's rest from one of R's line starts followed by "}",
 *   the check from there goes as R's did, to R's end: the body ends there.
 *
 * So only the lines between are checked: the changed ones.  The same holds inside a section:
 * the check of a section line is canonical_lines of the level below between its head and its
 * closing line, whose state is the position and the level, so where the text agrees with R past a
 * section's "{", the check resumes among the section's lines (and past its closing line, among
 * the lines around it), and where the text from one of those line starts is R's rest from a line
 * start of R's at the same level followed by "}", the body ends as R's did.  So a vg_update that
 * changes one line of one LV checks that line, not the LV (~300 characters, ~3 k instructions).
 * R's line starts are found by skip_line, section_inner and skip_close, which rely on R being
 * canonical (outside strings a "\n" only starts a line). */

/* In a body the check accepted, the end of the top line at ``b`` ("\n", ind TABs, a key),
 * where canonical_line ends it (after its value or its section's "}"); -1 if b is not one. */
static Py_ssize_t skip_line(const Py_UCS1 *r, Py_ssize_t n, Py_ssize_t b, Py_ssize_t ind) {
    if (b >= n || r[b] != '\n' || !tabs_at(r, b + 1, n, ind) || b + 1 + ind >= n || !is_key_char(r[b + 1 + ind]))
        return -1;
    Py_ssize_t j = b + 1 + ind;
    while (j < n && is_key_char(r[j])) j++;
    int section = j < n && r[j] == ' ';
    for (;;) {
        const Py_UCS1 *nl = memchr(r + j, '\n', (size_t)(n - j));
        Py_ssize_t q = nl == NULL ? n : nl - r;
        const Py_UCS1 *quote = memchr(r + j, '"', (size_t)(q - j));
        if (quote != NULL) { /* a string, which may hold a "\n": past it */
            j = canonical_string(r, quote - r, n);
            if (j < 0) return -1;
            continue;
        }
        if (q >= n) return -1;
        if (!section) return q; /* a value's line ends at the first "\n" outside strings */
        /* a section's lines are deeper, but for its closing line: "\n", ind TABs, "}" */
        if (tabs_at(r, q + 1, n, ind) && q + 1 + ind < n && r[q + 1 + ind] == '}') return q + 1 + ind + 1;
        j = q + 1;
    }
}

/* how many of the first n characters of a and b agree */
static Py_ssize_t common_prefix(const Py_UCS1 *a, const Py_UCS1 *b, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i + 8 <= n) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y) break;
        i += 8;
    }
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* the TABs before a line of level ``level`` (canonical_line's ``ind``) */
static inline Py_ssize_t level_ind(Py_ssize_t depth, Py_ssize_t level, Py_ssize_t levels) {
    return level < levels ? depth + level + 1 : depth + levels;
}

/* In a body the check accepted, the start of the first inner line of the section line at ``b``
 * (ind TABs): the position after its "{"; -1 if the line at b is not a section's. */
static Py_ssize_t section_inner(const Py_UCS1 *r, Py_ssize_t n, Py_ssize_t b, Py_ssize_t ind) {
    if (b >= n || r[b] != '\n' || !tabs_at(r, b + 1, n, ind) || b + 1 + ind >= n || !is_key_char(r[b + 1 + ind]))
        return -1;
    Py_ssize_t j = b + 1 + ind;
    while (j < n && is_key_char(r[j])) j++;
    return j + 1 < n && r[j] == ' ' && r[j + 1] == '{' ? j + 2 : -1;
}

/* the closing line at ``b`` of a section whose line has ``ind`` TABs ("\n", ind TABs, "}"):
 * the position after its "}", or -1 */
static Py_ssize_t skip_close(const Py_UCS1 *r, Py_ssize_t n, Py_ssize_t b, Py_ssize_t ind) {
    if (b < 0 || b >= n || r[b] != '\n' || !tabs_at(r, b + 1, n, ind) || b + 1 + ind >= n || r[b + 1 + ind] != '}')
        return -1;
    return b + 1 + ind + 1;
}

/* The check from ``i``, where canonical_lines of level ``level`` is about to check a line (inside
 * ``level`` sections): what the whole check gives from there.  It is what the callers of that
 * canonical_lines do with its result: for each section around, canonical_line's test of the
 * closing line, and the lines of the level above after it; at level 0, close_body. */
static Py_ssize_t finish_body(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t i, Py_ssize_t depth, Py_ssize_t level,
                              Py_ssize_t levels) {
    for (;;) {
        Py_ssize_t e = canonical_lines(s, i, n, depth, level, levels);
        if (level == 0) return close_body(s, n, e, depth);
        i = skip_close(s, n, e, level_ind(depth, --level, levels));
        if (i < 0) return -1;
    }
}

/* whether the text from ``i`` is R's rest from its position ``b`` followed by "}" */
static inline int rest_is(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t i, const Py_UCS1 *r, Py_ssize_t rl,
                          Py_ssize_t b) {
    Py_ssize_t rest = rl - b;
    return b >= 0 && rest < n - i && memcmp(s + i, r + b, (size_t)rest) == 0 && s[i + rest] == '}';
}

/* canonical_body_end(s, n, start, depth, levels, endpos), given a body ``r`` (``rl`` characters)
 * the check accepted at this depth and with these levels (see above) */
static Py_ssize_t body_end_like(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t start, Py_ssize_t depth,
                                Py_ssize_t levels, Py_ssize_t endpos, const Py_UCS1 *r, Py_ssize_t rl) {
    if (endpos < n) n = endpos;
    if (start < 0 || start > n || levels < 1) return -1;
    Py_ssize_t same = common_prefix(s + start, r, rl < n - start ? rl : n - start);
    /* Down R's lines to where the check of the text resumes: the deepest of R's resume points
     * whose state the text's first ``same`` characters decide.  Each step moves b forward: into
     * a section whose head agrees, past a line whose check (and the character after it) agrees,
     * or past the closing line of the section it is in. */
    Py_ssize_t level = 0, b = 0, next, ind;
    for (;;) {
        ind = level_ind(depth, level, levels);
        Py_ssize_t inner = level < levels ? section_inner(r, rl, b, ind) : -1;
        if (inner >= 0 && inner <= same) {
            level++;
            b = inner;
            continue;
        }
        next = skip_line(r, rl, b, ind); /* its check's end (the first character it does not read) */
        if (next < 0 && level > 0) {     /* b is the closing line of the section at level - 1 */
            Py_ssize_t after = skip_close(r, rl, b, level_ind(depth, level - 1, levels));
            if (after >= 0 && after <= same) {
                level--;
                b = after;
                continue;
            }
        }
        if (next < 0 || next >= same) break;
        b = next;
    }
    /* the text's check from b on: its lines at this level until the text goes on as R does from
     * one of its resume points -- R's line b dropped, a line added before it, or it changed */
    Py_ssize_t i = start + b;
    if (rest_is(s, n, i, r, rl, next)) return i + rl - next;
    for (int tries = 0; tries < 2; tries++) {
        Py_ssize_t e = canonical_line(s, i, n, depth, level, levels);
        if (e == LINES_END) break;
        if (e < 0) return -1;
        i = e;
        if (rest_is(s, n, i, r, rl, b)) return i + rl - b;
        if (next < 0) break;
        b = next;
        if (rest_is(s, n, i, r, rl, b)) return i + rl - b;
        next = skip_line(r, rl, b, ind);
    }
    return finish_body(s, n, i, depth, level, levels);
}

/* lazy_body_end(text, start, depth, levels, endpos): the end of the canonical body that
 * starts at ``start`` (after "name {" indented ``depth`` TABs), -1 if there is none before
 * ``endpos``, or -2 when the text has wider characters (ask the regex). */
static PyObject *lazy_body_end(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t start, depth, levels, endpos;
    if (!PyArg_ParseTuple(args, "Unnnn", &text, &start, &depth, &levels, &endpos)) return NULL;
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) return PyLong_FromLong(-2);
    return PyLong_FromSsize_t(
        canonical_body_end(PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text), start, depth, levels, endpos));
}

/* ---- cutting a text around its lazy bodies (codec.Parser._cut_lazy_py with check_head=False) ---- */

/* the first occurrence of w[0:m] in s[from:n], or -1 (str.find) */
static Py_ssize_t find_word(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t from, const Py_UCS1 *w, Py_ssize_t m) {
    if (m == 0) return from <= n ? from : -1;
    const Py_UCS1 *end = s + n, *p = s + from;
    while (end - p >= m) {
        p = memchr(p, w[0], (size_t)(end - p - m + 1));
        if (p == NULL) return -1;
        if (memcmp(p + 1, w + 1, (size_t)(m - 1)) == 0) return p - s;
        p++;
    }
    return -1;
}

#define CUT_NAMES_MAX 16

typedef struct {
    const Py_UCS1 *s;
    Py_ssize_t n, count;
    const Py_UCS1 *name[CUT_NAMES_MAX];
    Py_ssize_t len[CUT_NAMES_MAX];
    Py_ssize_t next[CUT_NAMES_MAX]; /* each name's first occurrence at or after the last search, -1: none */
} Heads;

/* codec._lazy_head's search from ``p``: ``^([ \t]*+)(?:names)([ \t]*+)\{`` (multi-line), its
 * alternatives tried in the order of h->name (sorted, as the regex has them).  Only a line start
 * at or after p can match ("^" at p needs p to start a line), and only the line of a name's
 * occurrence (as in codec._search_head), so the search goes from one such line to the next.
 * Returns 1 and the match's start, the end of group 1, the end of the name and the match's end,
 * or 0. */
static int search_head(Heads *h, Py_ssize_t p, Py_ssize_t *start, Py_ssize_t *g1, Py_ssize_t *g2s, Py_ssize_t *end) {
    const Py_UCS1 *s = h->s;
    Py_ssize_t n = h->n;
    for (;;) {
        Py_ssize_t f = -1;
        for (Py_ssize_t i = 0; i < h->count; i++) {
            if (h->next[i] >= 0 && h->next[i] < p) h->next[i] = find_word(s, n, p, h->name[i], h->len[i]);
            if (h->next[i] >= 0 && (f < 0 || h->next[i] < f)) f = h->next[i];
        }
        if (f < 0) return 0;
        Py_ssize_t q = f;
        while (q > p && s[q - 1] != '\n') q--;
        if (q > p || p == 0 || s[p - 1] == '\n') {
            Py_ssize_t j = q;
            while (j < n && (s[j] == ' ' || s[j] == '\t')) j++;
            for (Py_ssize_t i = 0; i < h->count; i++) {
                Py_ssize_t m = h->len[i];
                if (m > n - j || memcmp(s + j, h->name[i], (size_t)m) != 0) continue;
                Py_ssize_t k = j + m;
                while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
                if (k < n && s[k] == '{') {
                    *start = q;
                    *g1 = j;
                    *g2s = j + m;
                    *end = k + 1;
                    return 1;
                }
            }
        }
        const Py_UCS1 *eol = memchr(s + f, '\n', (size_t)(n - f));
        if (eol == NULL) return 0;
        p = eol - s + 1;
    }
}

/* Parser._recently_verified: the first remembered (depth, body) of this depth whose body
 * stands at ``start`` followed by "}" (borrowed), or NULL */
static PyObject *recently_verified(PyObject *verified, const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t start,
                                   Py_ssize_t depth) {
    Py_ssize_t count = PyList_GET_SIZE(verified);
    for (Py_ssize_t v = 0; v < count; v++) {
        PyObject *item = PyList_GET_ITEM(verified, v);
        PyObject *raw = PyTuple_GET_ITEM(item, 1);
        Py_ssize_t len = PyUnicode_GET_LENGTH(raw);
        if (PyUnicode_KIND(raw) != PyUnicode_1BYTE_KIND || len >= n - start) continue; /* cannot stand there */
        Py_ssize_t seen = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
        if (seen == -1 && PyErr_Occurred()) {
            PyErr_Clear(); /* too big for any depth */
            continue;
        }
        if (seen == depth && memcmp(s + start, PyUnicode_1BYTE_DATA(raw), (size_t)len) == 0 && s[start + len] == '}')
            return raw;
    }
    return NULL;
}

/* the body of the first remembered (depth, body) of this depth, for body_end_like (borrowed), or NULL */
static PyObject *similar_body(PyObject *verified, Py_ssize_t depth) {
    for (Py_ssize_t v = 0; v < PyList_GET_SIZE(verified); v++) {
        PyObject *item = PyList_GET_ITEM(verified, v);
        PyObject *raw = PyTuple_GET_ITEM(item, 1);
        if (PyUnicode_KIND(raw) != PyUnicode_1BYTE_KIND) continue;
        Py_ssize_t seen = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
        if (seen == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            continue;
        }
        if (seen == depth) return raw;
    }
    return NULL;
}

/* Parser._remember_verified: (depth, raw) first, then the list cut to its budgets */
static int remember_verified(PyObject *verified, PyObject *raw, Py_ssize_t depth, Py_ssize_t min_chars,
                             Py_ssize_t one_max, Py_ssize_t count_max, Py_ssize_t chars_max) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(raw);
    if (len < min_chars || len > one_max) return 0;
    PyObject *d = PyLong_FromSsize_t(depth);
    if (d == NULL) return -1;
    PyObject *item = PyTuple_Pack(2, d, raw);
    Py_DECREF(d);
    if (item == NULL) return -1;
    int rc = PyList_Insert(verified, 0, item);
    Py_DECREF(item);
    if (rc < 0) return -1;
    Py_ssize_t total = 0, count = PyList_GET_SIZE(verified);
    for (Py_ssize_t v = 0; v < count; v++) {
        total += PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(PyList_GET_ITEM(verified, v), 1));
        if (v >= count_max || total > chars_max) return PyList_SetSlice(verified, v, count, NULL);
    }
    return 0;
}

static int append_new(PyObject *list, PyObject *obj) {
    if (obj == NULL) return -1;
    int rc = PyList_Append(list, obj);
    Py_DECREF(obj);
    return rc;
}

/* cut_lazy(text, names, verified, min_chars, one_max, count_max, chars_max, levels, max_chars):
 * Parser._cut_lazy_py(text, lazy, check_head=False) in one call: (pieces, raws), with
 * ``verified`` (the Parser's memo) read and updated as the reference does.  ``names`` is
 * sorted(lazy), ``one_max`` VERIFIED_CHARS // 2, ``levels`` LAZY_MAX_DEPTH, ``max_chars``
 * LAZY_MAX_CHARS.  NotImplemented (nothing read or changed) when the text or a name has
 * wider characters, there are more than CUT_NAMES_MAX names or the memo holds anything but
 * (int, str) pairs: the reference decides. */
static PyObject *cut_lazy(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "cut_lazy takes 9 arguments");
        return NULL;
    }
    PyObject *text = args[0], *names = args[1], *verified = args[2];
    if (!PyUnicode_Check(text) || !PyTuple_Check(names) || !PyList_Check(verified)) {
        PyErr_SetString(PyExc_TypeError, "cut_lazy(str, tuple, list, int, ...)");
        return NULL;
    }
    Py_ssize_t num[6];
    for (int a = 0; a < 6; a++) {
        num[a] = PyLong_AsSsize_t(args[3 + a]);
        if (num[a] == -1 && PyErr_Occurred()) return NULL;
    }
    Py_ssize_t min_chars = num[0], one_max = num[1], count_max = num[2], chars_max = num[3], levels = num[4],
               max_chars = num[5];
    Heads h;
    h.count = PyTuple_GET_SIZE(names);
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND || h.count > CUT_NAMES_MAX) Py_RETURN_NOTIMPLEMENTED;
    for (Py_ssize_t v = 0; v < PyList_GET_SIZE(verified); v++) {
        PyObject *item = PyList_GET_ITEM(verified, v);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyLong_Check(PyTuple_GET_ITEM(item, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(item, 1)))
            Py_RETURN_NOTIMPLEMENTED;
    }
    h.s = PyUnicode_1BYTE_DATA(text);
    h.n = PyUnicode_GET_LENGTH(text);
    int any = 0;
    for (Py_ssize_t i = 0; i < h.count; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name) || PyUnicode_KIND(name) != PyUnicode_1BYTE_KIND) Py_RETURN_NOTIMPLEMENTED;
        h.name[i] = PyUnicode_1BYTE_DATA(name);
        h.len[i] = PyUnicode_GET_LENGTH(name);
        h.next[i] = find_word(h.s, h.n, 0, h.name[i], h.len[i]);
        any |= h.next[i] >= 0;
    }
    PyObject *pieces = PyList_New(0), *raws = PyList_New(0);
    if (pieces == NULL || raws == NULL) goto error;
    Py_ssize_t pos = 0;
    if (any) {
        const Py_UCS1 *s = h.s;
        Py_ssize_t search_at = 0, hs, g1, g2s, end;
        int misses = 0; /* heads whose body is not canonical; each costs a scan of the text */
        while (search_head(&h, search_at, &hs, &g1, &g2s, &end)) {
            Py_ssize_t start = search_at = end;
            if (end - 1 - g2s != 1 || s[g2s] != ' ') continue; /* not the writer's layout */
            Py_ssize_t x = hs;
            while (x < g1 && s[x] == '\t') x++;
            if (x < g1) continue;
            Py_ssize_t depth = g1 - hs;
            PyObject *raw = recently_verified(verified, s, h.n, start, depth);
            if (raw != NULL) {
                Py_INCREF(raw);
            } else {
                PyObject *like = similar_body(verified, depth);
                Py_ssize_t endpos = start + max_chars + depth + 1;
                Py_ssize_t body = like == NULL ? canonical_body_end(s, h.n, start, depth, levels, endpos)
                                               : body_end_like(s, h.n, start, depth, levels, endpos,
                                                               PyUnicode_1BYTE_DATA(like), PyUnicode_GET_LENGTH(like));
                if (body < 0) {
                    if (++misses > 8) break; /* not LVM's writer: stop, or many heads cost O(n^2) */
                    continue;
                }
                raw = PyUnicode_Substring(text, start, body);
                if (raw == NULL) goto error;
                if (remember_verified(verified, raw, depth, min_chars, one_max, count_max, chars_max) < 0) {
                    Py_DECREF(raw);
                    goto error;
                }
            }
            PyObject *piece = PyUnicode_Substring(text, pos, start);
            if (piece == NULL || PyList_Append(pieces, piece) < 0 || PyList_Append(raws, raw) < 0) {
                Py_XDECREF(piece);
                Py_DECREF(raw);
                goto error;
            }
            Py_DECREF(piece);
            pos = search_at = start + PyUnicode_GET_LENGTH(raw);
            Py_DECREF(raw);
        }
    }
    if (append_new(pieces, PyUnicode_Substring(text, pos, h.n)) < 0) goto error;
    PyObject *result = PyTuple_Pack(2, pieces, raws);
    Py_DECREF(pieces);
    Py_DECREF(raws);
    return result;
error:
    Py_XDECREF(pieces);
    Py_XDECREF(raws);
    return NULL;
}

/* parse_text(names, pairs, keys, verified, spans, limits, text): codec.Parser.parse's fast path
 * in one call: the text cut at its first NUL, cut around its lazy bodies (cut_lazy, when
 * ``names`` -- sorted(lazy) -- is not empty) and built (build).  ``limits`` is the Parser's
 * (short_max, pairs_max, keys_max, max_depth, lazy_max_depth, min_chars, one_max, count_max,
 * chars_max, max_chars): the arguments of build and cut_lazy after their memos.  The text last,
 * so a functools.partial of the rest is the whole call (codec.Parser.quick).  Returns the tree,
 * None (not in the subset: the general parser decides, and raises what it raises) or
 * NotImplemented (wider characters, or cut_lazy's NotImplemented: Python's path decides);
 * either of the two leaves the memos as the Python path would find them after the same calls. */
static PyObject *parse_text(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7 || !PyTuple_Check(args[0]) || !PyTuple_Check(args[5]) || PyTuple_GET_SIZE(args[5]) != 10 ||
        !PyUnicode_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "parse_text(names: tuple, pairs, keys, verified, spans, limits: tuple[10], text: str)");
        return NULL;
    }
    PyObject *names = args[0], *limits = args[5], *text = args[6];
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    const Py_UCS1 *nul = n ? memchr(s, 0, (size_t)n) : NULL;
    if (nul != NULL) {
        text = PyUnicode_Substring(text, 0, nul - s); /* the C parser sees a C string: a NUL ends it */
        if (text == NULL) return NULL;
    } else {
        Py_INCREF(text);
    }
    PyObject *cut = NULL, *pieces, *raws;
    if (PyTuple_GET_SIZE(names) > 0) {
        /* cut_lazy(text, names, verified, min_chars, one_max, count_max, chars_max, levels, max_chars) */
        PyObject *cut_args[9] = {text,
                                 names,
                                 args[3],
                                 PyTuple_GET_ITEM(limits, 5),
                                 PyTuple_GET_ITEM(limits, 6),
                                 PyTuple_GET_ITEM(limits, 7),
                                 PyTuple_GET_ITEM(limits, 8),
                                 PyTuple_GET_ITEM(limits, 4),
                                 PyTuple_GET_ITEM(limits, 9)};
        cut = cut_lazy(self, cut_args, 9);
        Py_DECREF(text);
        if (cut == NULL || cut == Py_NotImplemented) return cut;
        pieces = PyTuple_GET_ITEM(cut, 0);
        raws = PyTuple_GET_ITEM(cut, 1);
    } else {
        pieces = PyList_New(1);
        raws = PyList_New(0);
        if (pieces == NULL || raws == NULL) {
            Py_XDECREF(pieces);
            Py_XDECREF(raws);
            Py_DECREF(text);
            return NULL;
        }
        PyList_SET_ITEM(pieces, 0, text); /* the list takes the reference */
        cut = PyTuple_Pack(2, pieces, raws);
        Py_DECREF(pieces);
        Py_DECREF(raws);
        if (cut == NULL) return NULL;
    }
    PyObject *build_args[10] = {pieces, raws, args[1], args[2]};
    for (int a = 0; a < 5; a++) build_args[4 + a] = PyTuple_GET_ITEM(limits, a);
    build_args[9] = args[4];
    PyObject *tree = build(self, build_args, 10);
    Py_DECREF(cut);
    return tree;
}

/* first_value(items, key): the value of the first (key, value) pair of ``items`` whose key
 * equals ``key``, or None (codec._first_value_py, the reference; Section.child's loop);
 * NotImplemented when an item is not a 2-tuple (the reference's loop decides) */
static PyObject *first_value(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "first_value(items: list, key: str)");
        return NULL;
    }
    PyObject *items = args[0], *key = args[1];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) Py_RETURN_NOTIMPLEMENTED; /* Python's loop */
        PyObject *k = PyTuple_GET_ITEM(pair, 0);
        if (k == key) return Py_NewRef(PyTuple_GET_ITEM(pair, 1));
        if (PyUnicode_CheckExact(k)) {
            if (PyUnicode_GET_LENGTH(k) == PyUnicode_GET_LENGTH(key) && PyUnicode_KIND(k) == PyUnicode_KIND(key) &&
                memcmp(PyUnicode_DATA(k), PyUnicode_DATA(key), PyUnicode_GET_LENGTH(k) * PyUnicode_KIND(k)) == 0)
                return Py_NewRef(PyTuple_GET_ITEM(pair, 1));
            continue;
        }
        Py_INCREF(pair);
        int same = PyObject_RichCompareBool(k, key, Py_EQ); /* a key of another type: Python's == */
        Py_DECREF(pair);
        if (same < 0) return NULL;
        if (same) return Py_NewRef(PyTuple_GET_ITEM(pair, 1));
    }
    Py_RETURN_NONE;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *type, *items, *raw;
    if (!PyArg_ParseTuple(args, "O!OO", &PyType_Type, &type, &items, &raw)) return NULL;
    if (Py_TYPE(items)->tp_descr_set == NULL || Py_TYPE(raw)->tp_descr_set == NULL) {
        PyErr_SetString(PyExc_TypeError, "configure: _items and raw must be slot descriptors");
        return NULL;
    }
    Py_XSETREF(section_type, Py_NewRef(type));
    Py_XSETREF(items_descr, Py_NewRef(items));
    Py_XSETREF(raw_descr, Py_NewRef(raw));
    items_offset = raw_offset = -1;
    /* __slots__ members (object references) of this very type: new_section stores into them */
    if (Py_IS_TYPE(items, &PyMemberDescr_Type) && Py_IS_TYPE(raw, &PyMemberDescr_Type)) {
        PyMemberDef *mi = ((PyMemberDescrObject *)items)->d_member, *mr = ((PyMemberDescrObject *)raw)->d_member;
        if (mi->type == T_OBJECT_EX && mr->type == T_OBJECT_EX && !(mi->flags & READONLY) && !(mr->flags & READONLY) &&
            ((PyDescrObject *)items)->d_type == (PyTypeObject *)type &&
            ((PyDescrObject *)raw)->d_type == (PyTypeObject *)type) {
            items_offset = mi->offset;
            raw_offset = mr->offset;
        }
    }
    Py_RETURN_NONE;
}

/* ---- a long message's bytes to str, a chunk a step (framing.decode_steps) ----
 *
 * AsciiDecoder(buffer) allocates the str once (ASCII: one byte a character)
 * and step(n) fills the next n bytes of it after checking they are ASCII, so
 * that neither the copy nor the page faults of 20 MB of fresh memory happen
 * in one piece.  ASCII bytes decode to the same characters under UTF-8 with
 * any error handler, which is framing.decode's result.  A byte that is not
 * ASCII ends it (step returns -1): the caller decodes in Python.  The str is
 * handed out by result() only once every byte is in it.
 */
typedef struct {
    PyObject_HEAD
    Py_buffer source;
    int holds_source;
    PyObject *text; /* being filled; NULL once handed out or abandoned */
    Py_ssize_t done;
} AsciiDecoder;

static void decoder_release(AsciiDecoder *self) {
    if (self->holds_source) {
        PyBuffer_Release(&self->source);
        self->holds_source = 0;
    }
    Py_CLEAR(self->text);
}

static PyObject *decoder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *source;
    if (!PyArg_ParseTuple(args, "O:AsciiDecoder", &source)) return NULL;
    AsciiDecoder *self = (AsciiDecoder *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    if (PyObject_GetBuffer(source, &self->source, PyBUF_SIMPLE) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->holds_source = 1;
    self->text = PyUnicode_New(self->source.len, 127);
    if (self->text == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void decoder_dealloc(AsciiDecoder *self) {
    decoder_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* step(n): the next n bytes (at most) copied; the bytes left, or -1 (not ASCII: abandoned) */
static PyObject *decoder_step(AsciiDecoder *self, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (self->text == NULL) return PyLong_FromLong(-1);
    Py_ssize_t left = self->source.len - self->done;
    if (n < 0) n = 0;
    if (n > left) n = left;
    const unsigned char *from = (const unsigned char *)self->source.buf + self->done;
    unsigned char high = 0;
    for (Py_ssize_t i = 0; i < n; i++) high |= from[i];
    if (high & 0x80) {
        decoder_release(self);
        return PyLong_FromLong(-1);
    }
    memcpy(PyUnicode_1BYTE_DATA(self->text) + self->done, from, (size_t)n);
    self->done += n;
    left -= n;
    if (left == 0 && self->holds_source) {
        PyBuffer_Release(&self->source);
        self->holds_source = 0;
    }
    return PyLong_FromSsize_t(left);
}

/* result(): the str, once every byte is in it */
static PyObject *decoder_result(AsciiDecoder *self, PyObject *unused) {
    if (self->text == NULL || self->holds_source) {
        PyErr_SetString(PyExc_ValueError, "AsciiDecoder: not decoded to the end");
        return NULL;
    }
    PyObject *text = self->text;
    self->text = NULL;
    return text;
}

static PyMethodDef decoder_methods[] = {
    {"step", (PyCFunction)decoder_step, METH_O, "Copy the next n bytes at most; the bytes left, -1 if not ASCII."},
    {"result", (PyCFunction)decoder_result, METH_NOARGS, "The str, once every byte is in it."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AsciiDecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0) /* the macro ends with its comma */
    .tp_name = "pylvmetad.wire._ccodec.AsciiDecoder",
    .tp_basicsize = sizeof(AsciiDecoder),
    .tp_dealloc = (destructor)decoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "AsciiDecoder(buffer): an ASCII message decoded to str a chunk at a time.",
    .tp_methods = decoder_methods,
    .tp_new = decoder_new,
};

/* ---- a long string's value joined from its chunks, a chunk a step (codec.Parser._long_string) ----
 *
 * AsciiJoiner(parts) takes a list of ASCII strs, allocates their
 * concatenation once and step(n) copies the next n characters (at most)
 * into it: "".join(parts) without copying 20 MB into fresh memory in one
 * piece.  A part that is not an ASCII str is refused (TypeError) before
 * anything is allocated; the caller joins in Python.
 */
typedef struct {
    PyObject_HEAD
    PyObject *parts; /* the list (owned) */
    PyObject *text;  /* being filled; NULL once handed out */
    Py_ssize_t part; /* the next part to copy from, and how far into it */
    Py_ssize_t offset;
    Py_ssize_t done;
} AsciiJoiner;

static PyObject *joiner_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *parts;
    if (!PyArg_ParseTuple(args, "O!:AsciiJoiner", &PyList_Type, &parts)) return NULL;
    Py_ssize_t total = 0, count = PyList_GET_SIZE(parts);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *part = PyList_GET_ITEM(parts, k);
        if (!PyUnicode_CheckExact(part) || !PyUnicode_IS_ASCII(part)) {
            PyErr_SetString(PyExc_TypeError, "AsciiJoiner: every part must be an ASCII str");
            return NULL;
        }
        total += PyUnicode_GET_LENGTH(part);
    }
    AsciiJoiner *self = (AsciiJoiner *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->parts = Py_NewRef(parts);
    self->text = PyUnicode_New(total, 127);
    if (self->text == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void joiner_dealloc(AsciiJoiner *self) {
    Py_CLEAR(self->parts);
    Py_CLEAR(self->text);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* step(n): the next n characters (at most) copied; the characters left */
static PyObject *joiner_step(AsciiJoiner *self, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (self->text == NULL || self->parts == NULL) {
        PyErr_SetString(PyExc_ValueError, "AsciiJoiner: already handed out");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(self->parts);
    Py_UCS1 *into = PyUnicode_1BYTE_DATA(self->text);
    while (n > 0 && self->part < count) {
        PyObject *part = PyList_GET_ITEM(self->parts, self->part);
        /* the list is the caller's: a part replaced since is checked again */
        if (!PyUnicode_CheckExact(part) || !PyUnicode_IS_ASCII(part)) {
            PyErr_SetString(PyExc_TypeError, "AsciiJoiner: every part must be an ASCII str");
            return NULL;
        }
        Py_ssize_t size = PyUnicode_GET_LENGTH(part), take = size - self->offset;
        if (take > n) take = n;
        if (self->done + take > PyUnicode_GET_LENGTH(self->text)) {
            PyErr_SetString(PyExc_ValueError, "AsciiJoiner: the parts changed");
            return NULL;
        }
        memcpy(into + self->done, PyUnicode_1BYTE_DATA(part) + self->offset, (size_t)take);
        self->done += take;
        self->offset += take;
        n -= take;
        if (self->offset == size) {
            self->part++;
            self->offset = 0;
        }
    }
    if (self->part >= count && self->done != PyUnicode_GET_LENGTH(self->text)) {
        PyErr_SetString(PyExc_ValueError, "AsciiJoiner: the parts changed");
        return NULL;
    }
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(self->text) - self->done);
}

/* result(): the str, once every character is in it */
static PyObject *joiner_result(AsciiJoiner *self, PyObject *unused) {
    if (self->text == NULL || self->done != PyUnicode_GET_LENGTH(self->text)) {
        PyErr_SetString(PyExc_ValueError, "AsciiJoiner: not joined to the end");
        return NULL;
    }
    Py_CLEAR(self->parts);
    PyObject *text = self->text;
    self->text = NULL;
    return text;
}

static PyMethodDef joiner_methods[] = {
    {"step", (PyCFunction)joiner_step, METH_O, "Copy the next n characters at most; the characters left."},
    {"result", (PyCFunction)joiner_result, METH_NOARGS, "The str, once every character is in it."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AsciiJoinerType = {
    PyVarObject_HEAD_INIT(NULL, 0) /* the macro ends with its comma */
    .tp_name = "pylvmetad.wire._ccodec.AsciiJoiner",
    .tp_basicsize = sizeof(AsciiJoiner),
    .tp_dealloc = (destructor)joiner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "AsciiJoiner(parts): \"\".join(parts) of ASCII strs, a chunk at a time.",
    .tp_methods = joiner_methods,
    .tp_new = joiner_new,
};

/* ---- compare_trees(a, b): LVM's compare_config (codec._compare_trees_py, the reference) ----
 *
 * The same walk as the reference, step by step: two Sections of equal lazy
 * text are equal unheard, two exact ints or two exact strs of one type are
 * decided here, a Section orders before a value, two Sections recurse into
 * their children (when both have any), and every other pair of values is
 * decided by the Python codec._compare_values given to configure_compare(),
 * so the rules for floats, lists and mixed types live in one place.  A
 * Section's ``raw`` and children are read as Python reads them: an exact
 * Section's slots directly (its ``items`` property only when the children are
 * not built yet, which builds them), any subclass's through its attributes.
 * Recursion is bounded by Py_EnterRecursiveCall; errors propagate.
 */
static PyObject *compare_values_fn; /* codec._compare_values */
static PyObject *str_items, *str_raw, *int_one;

/* a Section's raw (new reference) */
static PyObject *section_raw(PyObject *s) {
    if (Py_TYPE(s) == (PyTypeObject *)section_type)
        return Py_TYPE(raw_descr)->tp_descr_get(raw_descr, s, section_type);
    return PyObject_GetAttr(s, str_raw);
}

/* a Section's children (new reference): s.items */
static PyObject *section_items(PyObject *s) {
    if (Py_TYPE(s) == (PyTypeObject *)section_type) {
        PyObject *items = Py_TYPE(items_descr)->tp_descr_get(items_descr, s, section_type);
        if (items != Py_None) return items; /* built (or NULL: the error) */
        Py_DECREF(items);
    }
    return PyObject_GetAttr(s, str_items);
}

/* x == y for two texts: 1, 0, or -1 (an error) */
static int same_text(PyObject *x, PyObject *y) {
    if (x == y) return 1;
    if (PyUnicode_CheckExact(x) && PyUnicode_CheckExact(y)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(x);
        return n == PyUnicode_GET_LENGTH(y) && PyUnicode_KIND(x) == PyUnicode_KIND(y) &&
               memcmp(PyUnicode_DATA(x), PyUnicode_DATA(y), (size_t)n * PyUnicode_KIND(x)) == 0;
    }
    return PyObject_RichCompareBool(x, y, Py_EQ);
}

/* the value of a (key, value) pair: pair[1] (new reference) */
static PyObject *pair_value(PyObject *pair) {
    if (PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) >= 2) return Py_NewRef(PyTuple_GET_ITEM(pair, 1));
    return PyObject_GetItem(pair, int_one);
}

/* two scalars of one type, int or str: -1, 0, 1, or -2 (an error) */
static int compare_scalars(PyObject *x, PyObject *y) {
    if (PyUnicode_CheckExact(x)) {
        int r = same_text(x, y);
        if (r != 0) return r < 0 ? -2 : 0;
        r = PyUnicode_Compare(x, y);
        return r == -1 && PyErr_Occurred() ? -2 : r;
    }
    int r = PyObject_RichCompareBool(x, y, Py_EQ);
    if (r != 0) return r < 0 ? -2 : 0;
    r = PyObject_RichCompareBool(x, y, Py_LT);
    return r < 0 ? -2 : (r ? -1 : 1);
}

static int compare_lists(PyObject *a, PyObject *b, PyObject **result);

/* two Sections' order as the reference's loop decides it; 0 with *result set, or -1 (an error) */
static int compare_sections(PyObject *va, PyObject *vb, PyObject **result) {
    PyObject *ra = section_raw(va);
    if (ra == NULL) return -1;
    if (ra != Py_None) {
        PyObject *rb = section_raw(vb);
        if (rb == NULL) {
            Py_DECREF(ra);
            return -1;
        }
        int same = same_text(ra, rb);
        Py_DECREF(rb);
        if (same < 0) {
            Py_DECREF(ra);
            return -1;
        }
        if (same) { /* equal lazy texts: equal, neither parsed */
            Py_DECREF(ra);
            *result = NULL;
            return 0;
        }
    }
    Py_DECREF(ra);
    PyObject *ca = section_items(va);
    if (ca == NULL) return -1;
    PyObject *cb = section_items(vb);
    if (cb == NULL) {
        Py_DECREF(ca);
        return -1;
    }
    int rc = 0;
    *result = NULL;
    int ta = PyObject_IsTrue(ca), tb = ta > 0 ? PyObject_IsTrue(cb) : 0;
    if (ta < 0 || tb < 0)
        rc = -1;
    else if (ta && tb)
        rc = compare_lists(ca, cb, result);
    Py_DECREF(ca);
    Py_DECREF(cb);
    return rc;
}

/* the reference's loop over two lists of pairs: 0 with *result a new reference to the
 * order, or NULL for 0 (equal); -1 on an error */
static int compare_lists(PyObject *a, PyObject *b, PyObject **result) {
    *result = NULL;
    if (!PyList_Check(a) || !PyList_Check(b)) {
        PyErr_SetString(PyExc_AssertionError, "compare_trees: lists of pairs or Sections");
        return -1;
    }
    if (Py_EnterRecursiveCall(" in compare_trees")) return -1;
    int rc = 0;
    Py_ssize_t la = PyList_GET_SIZE(a), lb = PyList_GET_SIZE(b);
    for (Py_ssize_t i = 0; i < la && i < lb; i++) {
        if (i >= PyList_GET_SIZE(a) || i >= PyList_GET_SIZE(b)) { /* shrunk under a callback */
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            rc = -1;
            break;
        }
        PyObject *va = pair_value(PyList_GET_ITEM(a, i));
        if (va == NULL) {
            rc = -1;
            break;
        }
        PyObject *vb = pair_value(PyList_GET_ITEM(b, i));
        if (vb == NULL) {
            Py_DECREF(va);
            rc = -1;
            break;
        }
        PyTypeObject *tv = Py_TYPE(va);
        if ((tv == &PyLong_Type || tv == &PyUnicode_Type) && Py_TYPE(vb) == tv) {
            int r = compare_scalars(va, vb);
            Py_DECREF(va);
            Py_DECREF(vb);
            if (r == -2) {
                rc = -1;
                break;
            }
            if (r == 0) continue;
            *result = PyLong_FromLong(r);
            rc = *result == NULL ? -1 : 0;
            break;
        }
        int a_sec = PyObject_TypeCheck(va, (PyTypeObject *)section_type);
        int b_sec = PyObject_TypeCheck(vb, (PyTypeObject *)section_type);
        PyObject *r = NULL;
        if (!a_sec && !b_sec) {
            r = PyObject_CallFunctionObjArgs(compare_values_fn, va, vb, NULL);
            if (r == NULL) rc = -1;
        } else if (a_sec != b_sec) {
            r = PyLong_FromLong(a_sec ? -1 : 1);
            if (r == NULL) rc = -1;
        } else {
            rc = compare_sections(va, vb, &r);
        }
        Py_DECREF(va);
        Py_DECREF(vb);
        if (rc < 0) break;
        if (r != NULL) {
            int nonzero = PyObject_IsTrue(r); /* the reference's ``r != 0`` on an int */
            if (nonzero < 0) {
                Py_DECREF(r);
                rc = -1;
                break;
            }
            if (nonzero) {
                *result = r;
                break;
            }
            Py_DECREF(r);
        }
    }
    Py_LeaveRecursiveCall();
    if (rc < 0 || *result != NULL) return rc;
    if (la != lb) {
        *result = PyLong_FromLong(la > lb ? 1 : -1);
        if (*result == NULL) return -1;
    }
    return 0;
}

static PyObject *compare_trees(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "compare_trees(a, b)");
        return NULL;
    }
    if (section_type == NULL || compare_values_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_ccodec.configure() and configure_compare() were not called");
        return NULL;
    }
    PyObject *a = args[0], *b = args[1], *result = NULL;
    int rc;
    if (PyObject_TypeCheck(a, (PyTypeObject *)section_type) && PyObject_TypeCheck(b, (PyTypeObject *)section_type)) {
        PyObject *ra = section_raw(a);
        if (ra == NULL) return NULL;
        if (ra != Py_None) {
            PyObject *rb = section_raw(b);
            if (rb == NULL) {
                Py_DECREF(ra);
                return NULL;
            }
            int same = same_text(ra, rb);
            Py_DECREF(rb);
            Py_DECREF(ra);
            if (same < 0) return NULL;
            if (same) return PyLong_FromLong(0);
        } else {
            Py_DECREF(ra);
        }
        PyObject *ca = section_items(a);
        if (ca == NULL) return NULL;
        PyObject *cb = section_items(b);
        if (cb == NULL) {
            Py_DECREF(ca);
            return NULL;
        }
        rc = compare_lists(ca, cb, &result);
        Py_DECREF(ca);
        Py_DECREF(cb);
    } else {
        rc = compare_lists(a, b, &result);
    }
    if (rc < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result != NULL ? result : PyLong_FromLong(0);
}

/* configure_compare(_compare_values): the reference's rule for the pairs decided in Python */
static PyObject *configure_compare(PyObject *self, PyObject *fn) {
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "configure_compare: a callable");
        return NULL;
    }
    Py_XSETREF(compare_values_fn, Py_NewRef(fn));
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------
 * same_trees(a, b): whether two Sections are the same tree exactly (codec._same_trees_py,
 * the reference).  Conservative: 1 only when every key is an exact str equal to the other's
 * and every value is of the very same type as the other's with the same value (floats: the
 * same repr; lists: the same atoms; Sections: the same trees, or the same lazy text); 0 for
 * anything else, objects of types it does not know included.  Lazy children are built as
 * the reference builds them (Section.items); recursion is bounded like compare_trees'.
 * ------------------------------------------------------------------------- */
static int same_nodes(PyObject *a, PyObject *b);

static int same_atoms(PyObject *va, PyObject *vb) {
    if (va == vb) return 1;
    PyTypeObject *t = Py_TYPE(va);
    if (Py_TYPE(vb) != t) return 0;
    if (t == &PyUnicode_Type) return same_text(va, vb);
    if (t == &PyLong_Type) return PyObject_RichCompareBool(va, vb, Py_EQ);
    if (t == &PyFloat_Type) {
        PyObject *ra = PyObject_Repr(va);
        if (ra == NULL) return -1;
        PyObject *rb = PyObject_Repr(vb);
        if (rb == NULL) {
            Py_DECREF(ra);
            return -1;
        }
        int r = same_text(ra, rb);
        Py_DECREF(ra);
        Py_DECREF(rb);
        return r;
    }
    if (t == (PyTypeObject *)section_type) return same_nodes(va, vb);
    if (PyList_Check(va)) {
        Py_ssize_t n = PyList_GET_SIZE(va);
        if (PyList_GET_SIZE(vb) != n) return 0;
        if (Py_EnterRecursiveCall(" in same_trees")) return -1;
        int r = 1;
        for (Py_ssize_t i = 0; i < n && r == 1; i++) {
            if (i >= PyList_GET_SIZE(va) || i >= PyList_GET_SIZE(vb)) { /* shrunk under a callback */
                r = 0;
                break;
            }
            PyObject *x = Py_NewRef(PyList_GET_ITEM(va, i)), *y = Py_NewRef(PyList_GET_ITEM(vb, i));
            r = same_atoms(x, y);
            Py_DECREF(x);
            Py_DECREF(y);
        }
        Py_LeaveRecursiveCall();
        return r;
    }
    return 0;
}

/* two Sections (exact type): 1, 0, or -1 (an error) */
static int same_nodes(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    if (Py_TYPE(a) != (PyTypeObject *)section_type || Py_TYPE(b) != (PyTypeObject *)section_type) return 0;
    PyObject *ra = section_raw(a);
    if (ra == NULL) return -1;
    PyObject *rb = section_raw(b);
    if (rb == NULL) {
        Py_DECREF(ra);
        return -1;
    }
    int same = ra != Py_None && rb != Py_None ? same_text(ra, rb) : 0;
    Py_DECREF(ra);
    Py_DECREF(rb);
    if (same != 0) return same;
    PyObject *ia = section_items(a);
    if (ia == NULL) return -1;
    PyObject *ib = section_items(b);
    if (ib == NULL) {
        Py_DECREF(ia);
        return -1;
    }
    int r = 1;
    if (!PyList_Check(ia) || !PyList_Check(ib) || PyList_GET_SIZE(ia) != PyList_GET_SIZE(ib)) r = 0;
    if (r == 1 && Py_EnterRecursiveCall(" in same_trees")) r = -1;
    if (r == 1) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ia) && r == 1; i++) {
            if (i >= PyList_GET_SIZE(ib)) { /* shrunk under a callback */
                r = 0;
                break;
            }
            PyObject *pa = Py_NewRef(PyList_GET_ITEM(ia, i)), *pb = Py_NewRef(PyList_GET_ITEM(ib, i));
            if (!PyTuple_CheckExact(pa) || PyTuple_GET_SIZE(pa) != 2 || !PyTuple_CheckExact(pb) ||
                PyTuple_GET_SIZE(pb) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(pa, 0)) ||
                !PyUnicode_CheckExact(PyTuple_GET_ITEM(pb, 0)))
                r = 0;
            else {
                r = same_text(PyTuple_GET_ITEM(pa, 0), PyTuple_GET_ITEM(pb, 0));
                if (r == 1) r = same_atoms(PyTuple_GET_ITEM(pa, 1), PyTuple_GET_ITEM(pb, 1));
            }
            Py_DECREF(pa);
            Py_DECREF(pb);
        }
        Py_LeaveRecursiveCall();
    }
    Py_DECREF(ia);
    Py_DECREF(ib);
    return r;
}

static PyObject *same_trees(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "same_trees(a, b)");
        return NULL;
    }
    if (section_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_ccodec.configure() was not called");
        return NULL;
    }
    int r = same_nodes(args[0], args[1]);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

/* first_values(items, keys): for each key of the tuple ``keys`` the value of the first pair
 * of ``items`` named so, or None (codec._first_values_py, the reference: first_value per
 * key), in one walk that stops once every key is found; NotImplemented when an item is not
 * a 2-tuple with an exact str key (the reference decides) */
static PyObject *first_values(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "first_values(items: list, keys: tuple)");
        return NULL;
    }
    PyObject *items = args[0], *keys = args[1];
    Py_ssize_t nk = PyTuple_GET_SIZE(keys);
    if (nk > 16) {
        PyErr_SetString(PyExc_ValueError, "first_values: 16 keys at most");
        return NULL;
    }
    for (Py_ssize_t j = 0; j < nk; j++)
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(keys, j))) {
            PyErr_SetString(PyExc_TypeError, "first_values: keys are str");
            return NULL;
        }
    PyObject *found[16] = {NULL};
    Py_ssize_t left = nk;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items) && left > 0; i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(pair, 0)))
            Py_RETURN_NOTIMPLEMENTED; /* the reference's loops */
        PyObject *k = PyTuple_GET_ITEM(pair, 0);
        for (Py_ssize_t j = 0; j < nk; j++) {
            if (found[j] != NULL) continue;
            if (same_text(k, PyTuple_GET_ITEM(keys, j))) { /* two exact strs: 1 or 0, never an error */
                found[j] = PyTuple_GET_ITEM(pair, 1);
                left--;
                break; /* the keys differ, so no other one is this key */
            }
        }
    }
    PyObject *out = PyTuple_New(nk);
    if (out == NULL) return NULL;
    for (Py_ssize_t j = 0; j < nk; j++) PyTuple_SET_ITEM(out, j, Py_NewRef(found[j] != NULL ? found[j] : Py_None));
    return out;
}

/* first_fields(items, keys, defaults): codec._first_fields_py (the reference) in C.  Each key
 * is a str (a child of ``items``) or a (section, key) pair of strs (a child of the first child
 * named ``section``, when that is an exact Section whose children are built; else None: the
 * getter decides).  Each default says what the getters would make of the first value v:
 * None -> v itself, or None when there is none; a str -> v when v is a non-empty exact str,
 * the default when there is no v, else None; an int -> v when v is an exact int that fits in
 * 32 bits, the default when there is no v, else None.  NotImplemented when a pair walked at the
 * top level is not a 2-tuple with an exact str key (the reference decides); such a pair walked in
 * the section gives None (the getter decides). */
#define FIELDS_MAX 16

/* the value of the first pair of ``items`` named ``key`` (borrowed) or NULL; -1: a pair's shape */
static int first_pair_value(PyObject *items, PyObject *key, PyObject **value) {
    *value = NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(pair, 0)))
            return -1;
        if (same_text(PyTuple_GET_ITEM(pair, 0), key)) { /* two exact strs: 1 or 0 */
            *value = PyTuple_GET_ITEM(pair, 1);
            return 1;
        }
    }
    return 0;
}

/* what the default's getter makes of ``value`` (borrowed, NULL: no pair): a new reference */
static PyObject *field_value(PyObject *value, PyObject *dflt) {
    if (dflt == Py_None) return Py_NewRef(value != NULL ? value : Py_None);
    if (value == NULL) return Py_NewRef(dflt);
    if (PyUnicode_CheckExact(dflt)) {
        if (PyUnicode_CheckExact(value) && PyUnicode_GET_LENGTH(value) > 0) return Py_NewRef(value);
        Py_RETURN_NONE;
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && v >= INT32_MIN && v <= INT32_MAX) return Py_NewRef(value);
    }
    Py_RETURN_NONE;
}

/* a str's hash (cached in the object after the first time), or -1 (an error: cleared, "unknown") */
static Py_hash_t text_hash(PyObject *text) {
    Py_hash_t h = PyObject_Hash(text);
    if (h == -1) PyErr_Clear();
    return h;
}

static PyObject *first_fields(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[0]) || !PyTuple_Check(args[1]) || !PyTuple_Check(args[2]) ||
        PyTuple_GET_SIZE(args[1]) != PyTuple_GET_SIZE(args[2]) || PyTuple_GET_SIZE(args[1]) > FIELDS_MAX) {
        PyErr_SetString(PyExc_TypeError, "first_fields(items: list, keys: tuple, defaults: tuple of as many, 16 at most)");
        return NULL;
    }
    PyObject *items = args[0], *keys = args[1], *defaults = args[2];
    Py_ssize_t nk = PyTuple_GET_SIZE(keys);
    /* the plain keys still looked for (their indexes, packed: a found one leaves the list) and
     * each key's hash (a str hashes once, then reads its cache): two strs of known, different
     * hashes are different, so most comparisons of a pair's key with a field's end there */
    Py_ssize_t active[FIELDS_MAX], left = 0;
    Py_hash_t hashes[FIELDS_MAX];
    int plain[FIELDS_MAX];
    for (Py_ssize_t j = 0; j < nk; j++) {
        PyObject *key = PyTuple_GET_ITEM(keys, j), *d = PyTuple_GET_ITEM(defaults, j);
        plain[j] = PyUnicode_CheckExact(key);
        int ok = plain[j] ||
                 (PyTuple_CheckExact(key) && PyTuple_GET_SIZE(key) == 2 && PyUnicode_CheckExact(PyTuple_GET_ITEM(key, 0)) &&
                  PyUnicode_CheckExact(PyTuple_GET_ITEM(key, 1)));
        if (!ok || !(d == Py_None || PyUnicode_CheckExact(d) || PyLong_CheckExact(d))) {
            PyErr_SetString(PyExc_TypeError, "first_fields: keys are strs or (str, str), defaults None, str or int");
            return NULL;
        }
        PyObject *name = plain[j] ? key : PyTuple_GET_ITEM(key, 0);
        hashes[j] = ((PyASCIIObject *)name)->hash; /* a str's cached hash: computed once, then read */
        if (hashes[j] == -1) hashes[j] = text_hash(name);
        if (plain[j]) active[left++] = j;
    }
    /* one walk of the top level for the plain keys, as first_values */
    PyObject *found[FIELDS_MAX] = {NULL};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items) && left > 0; i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(pair, 0)))
            Py_RETURN_NOTIMPLEMENTED;
        PyObject *k = PyTuple_GET_ITEM(pair, 0);
        Py_hash_t kh = ((PyASCIIObject *)k)->hash; /* -1: not computed yet (compared in full) */
        for (Py_ssize_t a = 0; a < left; a++) {
            Py_ssize_t j = active[a];
            if (kh != -1 && hashes[j] != -1 && kh != hashes[j]) continue;
            if (same_text(k, PyTuple_GET_ITEM(keys, j)) == 1) {
                found[j] = PyTuple_GET_ITEM(pair, 1);
                active[a] = active[--left]; /* the order of the rest does not matter */
                a--;
            }
        }
    }
    PyObject *out = PyTuple_New(nk);
    if (out == NULL) return NULL;
    for (Py_ssize_t j = 0; j < nk; j++) {
        PyObject *d = PyTuple_GET_ITEM(defaults, j), *value;
        if (plain[j]) {
            value = field_value(found[j], d);
        } else {
            PyObject *path = PyTuple_GET_ITEM(keys, j), *section = NULL, *inner;
            /* the section's name is often a plain key too: the top-level walk found its first value
             * (every pair before that one was checked) or walked every pair without finding it (it
             * stops early only once every plain key is found), so no second walk; else one here */
            int r = -2;
            for (Py_ssize_t q = 0; q < nk; q++) {
                if (!plain[q] || (hashes[q] != -1 && hashes[j] != -1 && hashes[q] != hashes[j])) continue;
                if (same_text(PyTuple_GET_ITEM(keys, q), PyTuple_GET_ITEM(path, 0)) == 1) {
                    section = found[q];
                    r = section != NULL;
                    break;
                }
            }
            if (r == -2) r = first_pair_value(items, PyTuple_GET_ITEM(path, 0), &section);
            if (r < 0) {
                Py_DECREF(out);
                Py_RETURN_NOTIMPLEMENTED;
            }
            value = NULL;
            if (r == 1 && Py_TYPE(section) == (PyTypeObject *)section_type) {
                PyObject *children = Py_TYPE(items_descr)->tp_descr_get(items_descr, section, section_type);
                if (children == NULL) {
                    Py_DECREF(out);
                    return NULL;
                }
                /* children not built (lazy) or odd: None, the getter decides */
                if (PyList_CheckExact(children) && first_pair_value(children, PyTuple_GET_ITEM(path, 1), &inner) >= 0) {
                    Py_XINCREF(inner); /* held while children goes */
                    Py_DECREF(children);
                    value = field_value(inner, d);
                    Py_XDECREF(inner);
                } else {
                    Py_DECREF(children);
                }
            }
            if (value == NULL && !PyErr_Occurred()) value = Py_NewRef(Py_None);
        }
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, j, value);
    }
    return out;
}

/* strip_device_hints(items): the cache's walk of a VG's ``physical_volumes`` pairs
 * (metad.cache._strip_device_hints_py, the reference), in C.  For each child Section (exact
 * type): its uuid (the first pair, ("id", str); an empty one is left out) goes into the list
 * returned, and its "device" pairs go as the reference's cursor drops them: never the first
 * pair, nor one right after a dropped one.  A section that loses a pair is touched (its raw
 * text no longer describes it).  Every shape is checked before anything changes: any pair that
 * is not a 2-tuple with an exact str key, a child of a Section subclass, or a PV whose first
 * pair is not ("id", str) gives NotImplemented with nothing changed (the reference decides). */
static PyObject *str_device, *str_id;

static int plain_pairs(PyObject *items) {
    if (!PyList_CheckExact(items)) return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(pair, 0)))
            return 0;
    }
    return 1;
}

/* a pair's key is ``key`` (both exact strs, plain_pairs checked it): 1 or 0 */
static int key_is(PyObject *pair, PyObject *key) { return same_text(PyTuple_GET_ITEM(pair, 0), key); }

static PyObject *strip_device_hints(PyObject *self, PyObject *items) {
    if (section_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_ccodec.configure() was not called");
        return NULL;
    }
    if (!plain_pairs(items)) Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t n = PyList_GET_SIZE(items);
    /* first pass: build every PV's children (as the reference does) and check their shapes */
    PyObject *children = PyList_New(0); /* each PV's items, in order, or None for a non-Section */
    if (children == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1);
        PyObject *pv_items;
        if (!PyObject_TypeCheck(v, (PyTypeObject *)section_type)) {
            pv_items = Py_NewRef(Py_None);
        } else if (Py_TYPE(v) != (PyTypeObject *)section_type) {
            Py_DECREF(children);
            Py_RETURN_NOTIMPLEMENTED;
        } else {
            pv_items = section_items(v);
            if (pv_items == NULL) {
                Py_DECREF(children);
                return NULL;
            }
            if (!plain_pairs(pv_items) || PyList_GET_SIZE(pv_items) == 0 ||
                !key_is(PyList_GET_ITEM(pv_items, 0), str_id) ||
                !PyUnicode_CheckExact(PyTuple_GET_ITEM(PyList_GET_ITEM(pv_items, 0), 1))) {
                Py_DECREF(pv_items);
                Py_DECREF(children);
                Py_RETURN_NOTIMPLEMENTED;
            }
        }
        int rc = PyList_Append(children, pv_items);
        Py_DECREF(pv_items);
        if (rc < 0) {
            Py_DECREF(children);
            return NULL;
        }
    }
    if (PyList_GET_SIZE(items) != n) { /* changed while building (a lazy parse): the reference */
        Py_DECREF(children);
        Py_RETURN_NOTIMPLEMENTED;
    }
    /* second pass: the uuids, and the hints dropped */
    PyObject *pvids = PyList_New(0);
    if (pvids == NULL) {
        Py_DECREF(children);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pv_items = PyList_GET_ITEM(children, i);
        if (pv_items == Py_None) continue;
        PyObject *pvid = PyTuple_GET_ITEM(PyList_GET_ITEM(pv_items, 0), 1);
        if (PyUnicode_GET_LENGTH(pvid) > 0 && PyList_Append(pvids, pvid) < 0) goto error;
        int touched = 0;
        for (Py_ssize_t j = 0; j + 1 < PyList_GET_SIZE(pv_items); j++) {
            if (!key_is(PyList_GET_ITEM(pv_items, j + 1), str_device)) continue;
            if (!touched) {
                PyObject *v = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1);
                if (Py_TYPE(raw_descr)->tp_descr_set(raw_descr, v, Py_None) < 0) goto error;
                touched = 1;
            }
            if (PyList_SetSlice(pv_items, j + 1, j + 2, NULL) < 0) goto error;
        }
    }
    Py_DECREF(children);
    return pvids;
error:
    Py_DECREF(children);
    Py_DECREF(pvids);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * format_tree(items_or_section, depth): codec._write's text (the reference, LVM's tree
 * writer) of a Section's children or of a list of pairs, or None for any shape it does not
 * write itself (then the reference writes the whole tree).  What it writes: pairs that are
 * exact 2-tuples with an exact str key (quoted as codec.format_key quotes: when it holds
 * one of # " ! = , { } [ ] ' or a character str.isspace() -- what the pattern's \s --
 * matches), each value an exact str (quoted: " and \ escaped), an exact int (not a bool),
 * an exact list or MarkedList of those atoms (a one-atom list as its atom unless marked;
 * [] for none) or an exact Section: its kept raw text when that ends with a line end and
 * the pair's indent (the writer's own text for this depth), else its children one level
 * deeper.  Indent: min(depth, 32) TABs.  Lazy children are built as the reference builds
 * them (Section.items); errors (a lazy body that does not parse, an int too long for str,
 * the recursion limit) propagate, as the reference raises them too.  Floats, bools,
 * subclasses and anything else give None.  Output through a _PyUnicodeWriter, so any
 * character is written as it is.
 * ------------------------------------------------------------------------- */
static PyObject *marked_list_type; /* codec.MarkedList */

#define FORMAT_MAX_TABS 32
static const char format_tabs[FORMAT_MAX_TABS + 1] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
#define FORMAT_DONE 0
#define FORMAT_ERROR (-1)
#define FORMAT_UNHANDLED (-2)

/* characters that make format_key quote a key, ASCII ones by table */
static unsigned char key_quote_ascii[128];

static void init_key_quote(void) {
    const char *special = "#\"!=,{}[]'";
    for (const char *c = special; *c; c++) key_quote_ascii[(unsigned char)*c] = 1;
    for (int c = 0; c < 128; c++)
        if (Py_UNICODE_ISSPACE(c)) key_quote_ascii[c] = 1;
}

static int key_needs_quotes(PyObject *key) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    if (PyUnicode_IS_ASCII(key)) {
        const Py_UCS1 *s = PyUnicode_1BYTE_DATA(key);
        for (Py_ssize_t i = 0; i < n; i++)
            if (key_quote_ascii[s[i]]) return 1;
        return 0;
    }
    int kind = PyUnicode_KIND(key);
    const void *data = PyUnicode_DATA(key);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 128 ? key_quote_ascii[c] : Py_UNICODE_ISSPACE(c)) return 1;
    }
    return 0;
}

/* codec.quote(s): s in double quotes, each " and \ after a \ */
static int write_quoted(_PyUnicodeWriter *w, PyObject *s) {
    if (_PyUnicodeWriter_WriteChar(w, '"') < 0) return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), from = 0;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c != '"' && c != '\\') continue;
        if (i > from && _PyUnicodeWriter_WriteSubstring(w, s, from, i) < 0) return -1;
        if (_PyUnicodeWriter_WriteChar(w, '\\') < 0) return -1;
        from = i; /* the character itself starts the next piece */
    }
    if (from == 0 && n > 0) {
        if (_PyUnicodeWriter_WriteStr(w, s) < 0) return -1;
    } else if (n > from && _PyUnicodeWriter_WriteSubstring(w, s, from, n) < 0)
        return -1;
    return _PyUnicodeWriter_WriteChar(w, '"');
}

/* str(v) of an exact int */
static int write_int(_PyUnicodeWriter *w, PyObject *v) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (overflow) {
        PyObject *text = PyObject_Str(v); /* past 64 bits: Python's own (and its digit limit) */
        if (text == NULL) return -1;
        int rc = _PyUnicodeWriter_WriteStr(w, text);
        Py_DECREF(text);
        return rc;
    }
    char buf[24];
    char *end = buf + sizeof buf, *p = end;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0) *--p = '-';
    return _PyUnicodeWriter_WriteASCIIString(w, p, end - p);
}

/* one atom of a list: an exact str or int, else FORMAT_UNHANDLED */
static int write_atom(_PyUnicodeWriter *w, PyObject *a) {
    if (PyUnicode_CheckExact(a)) return write_quoted(w, a);
    if (PyLong_CheckExact(a)) return write_int(w, a);
    return FORMAT_UNHANDLED;
}

static int write_pairs(_PyUnicodeWriter *w, PyObject *items, long long depth);

static int write_pair(_PyUnicodeWriter *w, PyObject *key, PyObject *value, long long depth) {
    Py_ssize_t tabs = depth < 0 ? 0 : depth > FORMAT_MAX_TABS ? FORMAT_MAX_TABS : (Py_ssize_t)depth;
    if (!PyUnicode_CheckExact(key)) return FORMAT_UNHANDLED;
    PyTypeObject *t = Py_TYPE(value);
    int list_kind = t == &PyList_Type ? 1 : (PyObject *)t == marked_list_type ? 2 : 0;
    int is_section = (PyObject *)t == section_type;
    if (!list_kind && !is_section && t != &PyUnicode_Type && t != &PyLong_Type) return FORMAT_UNHANDLED;
    if (list_kind) { /* check the atoms first, nothing is written for a list it gives up on */
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
            PyTypeObject *at = Py_TYPE(PyList_GET_ITEM(value, i));
            if (at != &PyUnicode_Type && at != &PyLong_Type) return FORMAT_UNHANDLED;
        }
    }
    if (tabs && _PyUnicodeWriter_WriteASCIIString(w, format_tabs, tabs) < 0) return FORMAT_ERROR;
    if (key_needs_quotes(key) ? write_quoted(w, key) < 0 : _PyUnicodeWriter_WriteStr(w, key) < 0) return FORMAT_ERROR;
    if (t == &PyUnicode_Type) {
        if (_PyUnicodeWriter_WriteChar(w, '=') < 0 || write_quoted(w, value) < 0) return FORMAT_ERROR;
    } else if (t == &PyLong_Type) {
        if (_PyUnicodeWriter_WriteChar(w, '=') < 0 || write_int(w, value) < 0) return FORMAT_ERROR;
    } else if (list_kind) {
        Py_ssize_t n = PyList_GET_SIZE(value);
        if (_PyUnicodeWriter_WriteChar(w, '=') < 0) return FORMAT_ERROR;
        if (n == 1 && list_kind == 1) {
            if (write_atom(w, PyList_GET_ITEM(value, 0)) < 0) return FORMAT_ERROR;
        } else {
            if (_PyUnicodeWriter_WriteChar(w, '[') < 0) return FORMAT_ERROR;
            for (Py_ssize_t i = 0; i < n; i++) {
                if (i && _PyUnicodeWriter_WriteChar(w, ',') < 0) return FORMAT_ERROR;
                if (write_atom(w, PyList_GET_ITEM(value, i)) < 0) return FORMAT_ERROR; /* checked above */
            }
            if (_PyUnicodeWriter_WriteChar(w, ']') < 0) return FORMAT_ERROR;
        }
    } else { /* a Section */
        PyObject *raw = section_raw(value);
        if (raw == NULL) return FORMAT_ERROR;
        if (raw != Py_None) {
            if (!PyUnicode_CheckExact(raw)) {
                Py_DECREF(raw);
                return FORMAT_UNHANDLED;
            }
            /* raw.endswith("\n" + indent) */
            Py_ssize_t n = PyUnicode_GET_LENGTH(raw);
            int kind = PyUnicode_KIND(raw);
            const void *data = PyUnicode_DATA(raw);
            int ends = n > tabs && PyUnicode_READ(kind, data, n - tabs - 1) == '\n';
            for (Py_ssize_t i = n - tabs; ends && i < n; i++) ends = PyUnicode_READ(kind, data, i) == '\t';
            if (ends) { /* kept as the writer's own text for this depth */
                int rc = _PyUnicodeWriter_WriteASCIIString(w, " {", 2) < 0 || _PyUnicodeWriter_WriteStr(w, raw) < 0 ||
                                 _PyUnicodeWriter_WriteASCIIString(w, "}\n", 2) < 0
                             ? FORMAT_ERROR
                             : FORMAT_DONE;
                Py_DECREF(raw);
                return rc;
            }
        }
        Py_DECREF(raw);
        if (_PyUnicodeWriter_WriteASCIIString(w, " {\n", 3) < 0) return FORMAT_ERROR;
        PyObject *children = section_items(value);
        if (children == NULL) return FORMAT_ERROR;
        int rc = write_pairs(w, children, depth + 1);
        Py_DECREF(children);
        if (rc < 0) return rc;
        if (tabs && _PyUnicodeWriter_WriteASCIIString(w, format_tabs, tabs) < 0) return FORMAT_ERROR;
        return _PyUnicodeWriter_WriteASCIIString(w, "}\n", 2) < 0 ? FORMAT_ERROR : FORMAT_DONE;
    }
    return _PyUnicodeWriter_WriteChar(w, '\n') < 0 ? FORMAT_ERROR : FORMAT_DONE;
}

static int write_pairs(_PyUnicodeWriter *w, PyObject *items, long long depth) {
    if (!PyList_CheckExact(items)) return FORMAT_UNHANDLED;
    if (Py_EnterRecursiveCall(" in format_tree")) return FORMAT_ERROR;
    int rc = FORMAT_DONE;
    Py_INCREF(items);
    for (Py_ssize_t i = 0; rc == FORMAT_DONE && i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
            rc = FORMAT_UNHANDLED;
            break;
        }
        Py_INCREF(pair); /* a lazy child's parse runs Python code: keep what is being written */
        rc = write_pair(w, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1), depth);
        Py_DECREF(pair);
    }
    Py_DECREF(items);
    Py_LeaveRecursiveCall();
    return rc;
}

static PyObject *format_tree(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "format_tree(items_or_section, depth)");
        return NULL;
    }
    if (section_type == NULL || marked_list_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_ccodec.configure() and configure_format() were not called");
        return NULL;
    }
    PyObject *tree = args[0];
    if (!PyLong_CheckExact(args[1])) Py_RETURN_NONE;
    int overflow = 0;
    long long depth = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (depth == -1 && PyErr_Occurred()) return NULL;
    if (overflow) Py_RETURN_NONE; /* past 64 bits: the reference's "\t" * min(depth, 32) decides */
    /* only min(depth, 32) matters, and depth grows by one a level (bounded by the recursion limit) */
    if (depth > FORMAT_MAX_TABS) depth = FORMAT_MAX_TABS;
    if (depth < -((long long)1 << 40)) depth = -((long long)1 << 40);
    PyObject *items;
    if (Py_TYPE(tree) == (PyTypeObject *)section_type) {
        items = section_items(tree);
        if (items == NULL) return NULL;
    } else if (PyList_CheckExact(tree)) {
        items = Py_NewRef(tree);
    } else
        Py_RETURN_NONE;
    _PyUnicodeWriter w;
    _PyUnicodeWriter_Init(&w);
    w.overallocate = 1;
    int rc = write_pairs(&w, items, depth);
    Py_DECREF(items);
    if (rc != FORMAT_DONE) {
        _PyUnicodeWriter_Dealloc(&w);
        if (rc == FORMAT_ERROR) return NULL;
        Py_RETURN_NONE;
    }
    return _PyUnicodeWriter_Finish(&w);
}

static PyObject *configure_format(PyObject *self, PyObject *type) {
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "configure_format(codec.MarkedList)");
        return NULL;
    }
    Py_XSETREF(marked_list_type, Py_NewRef(type));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"build", (PyCFunction)(void (*)(void))build, METH_FASTCALL, "The fast path's tree of a text cut around its lazy bodies, or None."},
    {"compare_trees", (PyCFunction)(void (*)(void))compare_trees, METH_FASTCALL, "LVM's compare_config of two Sections or lists of pairs."},
    {"configure", configure, METH_VARARGS, "configure(Section, Section._items, Section.raw)"},
    {"configure_compare", configure_compare, METH_O, "configure_compare(codec._compare_values)"},
    {"first_value", (PyCFunction)(void (*)(void))first_value, METH_FASTCALL, "The first pair's value for key, or None."},
    {"first_values", (PyCFunction)(void (*)(void))first_values, METH_FASTCALL, "first_value for each of a tuple of keys."},
    {"first_fields", (PyCFunction)(void (*)(void))first_fields, METH_FASTCALL, "The getters' reading of the first value of each key, or None: ask them."},
    {"strip_device_hints", strip_device_hints, METH_O, "The cache's device hints dropped from PV sections; their uuids."},
    {"same_trees", (PyCFunction)(void (*)(void))same_trees, METH_FASTCALL, "Whether two Sections are the same tree exactly."},
    {"cut_lazy", (PyCFunction)(void (*)(void))cut_lazy, METH_FASTCALL, "Parser._cut_lazy_py without the head check, in one call."},
    {"parse_text", (PyCFunction)(void (*)(void))parse_text, METH_FASTCALL, "Parser.parse's fast path (NUL cut, cut_lazy, build) in one call."},
    {"format_tree", (PyCFunction)(void (*)(void))format_tree, METH_FASTCALL, "codec._write's text of a Section or list of pairs, or None."},
    {"configure_format", configure_format, METH_O, "configure_format(codec.MarkedList)"},
    {"lazy_body_end", lazy_body_end, METH_VARARGS, "End of the canonical lazy body at start, -1, or -2."},
    {NULL, NULL, 0, NULL},
};

/* The digest of this file the build saw (setup.py defines it): codec.py compares it with the
   source beside it, so an in-place build older than its source is not used. */
#ifndef CCODEC_SOURCE_DIGEST
#define CCODEC_SOURCE_DIGEST ""
#endif

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ccodec", "The codec's fast path in C.", -1, methods};

PyMODINIT_FUNC PyInit__ccodec(void) {
    init_classes();
    init_key_quote();
    str_items = PyUnicode_InternFromString("items");
    str_raw = PyUnicode_InternFromString("raw");
    int_one = PyLong_FromLong(1);
    str_device = PyUnicode_InternFromString("device");
    str_id = PyUnicode_InternFromString("id");
    if (str_items == NULL || str_raw == NULL || int_one == NULL || str_device == NULL || str_id == NULL) return NULL;
    if (PyType_Ready(&AsciiDecoderType) < 0 || PyType_Ready(&AsciiJoinerType) < 0 || PyType_Ready(&SpanMemoType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "AsciiDecoder", (PyObject *)&AsciiDecoderType) < 0 ||
        PyModule_AddObjectRef(m, "AsciiJoiner", (PyObject *)&AsciiJoinerType) < 0 ||
        PyModule_AddObjectRef(m, "SpanMemo", (PyObject *)&SpanMemoType) < 0 ||
        PyModule_AddStringConstant(m, "SOURCE_DIGEST", CCODEC_SOURCE_DIGEST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

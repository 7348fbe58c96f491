/*
 * pickle.c - a strict pickle machine for the data.pkl of a torch.save checkpoint.
 *
 * Python's unpickler imports and calls whatever the file names; this one never does. It
 * knows the opcodes torch.save emits (protocol 2, plus the protocol 4 forms), builds plain
 * values (None, bool, int, float, str, tuple, list, dict) and evaluates only an allow-list
 * of callables by its own code:
 *
 *   collections.OrderedDict()                 -> an empty dict
 *   torch.<X>Storage                          -> a dtype tag, used inside persistent ids
 *   persistent_load(('storage', torch.<X>Storage, key, location, numel))
 *                                             -> a storage reference (record data/<key>)
 *   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, meta])
 *                                             -> a tensor description
 *   torch._utils._rebuild_parameter(tensor, requires_grad, hooks) -> that tensor
 *
 * Any other global is refused by name. The machine is bounded: stack depth, mark depth,
 * memo size, objects and container items all have limits, so a hostile file costs at most
 * a small multiple of its own size. Dict keys are not deduplicated here (that would cost
 * quadratic time on hostile input); torchbin.c rejects repeated tensor names.
 */
#include "io.h"

#include <stdio.h>
#include <string.h>

#define PK_MAX_STACK   (1u << 20)
#define PK_MAX_MARKS   (1u << 16)
#define PK_MAX_MEMO    (1u << 20)
#define PK_MAX_OBJECTS (1u << 20) /* ~100 MB; a state dict needs ~20 per tensor */
#define PK_MAX_ITEMS   (1u << 23)
#define PK_MAX_LINE    256 /* GLOBAL module / name lines */

enum pk_kind {
    PK_NONE,
    PK_BOOL,
    PK_INT,
    PK_FLOAT,
    PK_STR,
    PK_TUPLE,
    PK_LIST,
    PK_DICT, /* items hold key, value, key, value, ... */
    PK_GLOBAL,
    PK_STORAGE,
    PK_TENSOR
};

enum pk_global { G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAM, G_STORAGE };

struct pk_obj {
    enum pk_kind kind;
    int64_t i;     /* BOOL, INT; STORAGE: numel */
    const char *s; /* STR; STORAGE: key (not NUL-terminated) */
    size_t len;
    struct pk_obj **items; /* TUPLE, LIST, DICT */
    size_t n, cap;
    enum pk_global global;
    enum medvlm_dtype dtype;      /* GLOBAL G_STORAGE, STORAGE */
    struct mv_torch_tensor *t;    /* TENSOR */
    const struct pk_obj *storage; /* TENSOR: its STORAGE */
};

struct vm {
    const char *what;
    const unsigned char *p;
    size_t len, pos, op_pos;
    struct mv_arena objs;
    struct pk_obj **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t n_marks, marks_cap;
    struct pk_obj **memo;
    size_t memo_cap, memo_count;
    size_t objects, items;
    enum medvlm_status fail; /* why the last new_obj returned NULL */
};

static const struct {
    const char *module, *name;
    enum pk_global g;
    enum medvlm_dtype dtype;
} allowed[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, MEDVLM_DTYPE_F32},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR, MEDVLM_DTYPE_F32},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, MEDVLM_DTYPE_F32},
    {"torch", "FloatStorage", G_STORAGE, MEDVLM_DTYPE_F32},
    {"torch", "HalfStorage", G_STORAGE, MEDVLM_DTYPE_F16},
    {"torch", "BFloat16Storage", G_STORAGE, MEDVLM_DTYPE_BF16},
    {"torch", "DoubleStorage", G_STORAGE, MEDVLM_DTYPE_F64},
    {"torch", "LongStorage", G_STORAGE, MEDVLM_DTYPE_I64},
    {"torch", "IntStorage", G_STORAGE, MEDVLM_DTYPE_I32},
    {"torch", "ShortStorage", G_STORAGE, MEDVLM_DTYPE_I16},
    {"torch", "CharStorage", G_STORAGE, MEDVLM_DTYPE_I8},
    {"torch", "ByteStorage", G_STORAGE, MEDVLM_DTYPE_U8},
    {"torch", "BoolStorage", G_STORAGE, MEDVLM_DTYPE_BOOL},
};

static const char *kind_name(enum pk_kind k)
{
    static const char *names[] = {"None", "bool", "int",    "float",   "str",   "tuple",
                                  "list", "dict", "global", "storage", "tensor"};
    return names[k];
}

/* Records "WHAT: byte N: message" and returns st. */
static enum medvlm_status bad(struct vm *v, enum medvlm_status st, const char *fmt, ...)
    MV_PRINTF(3, 4);

static enum medvlm_status bad(struct vm *v, enum medvlm_status st, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mv_err(st, "%s: byte %zu: %s", v->what, v->op_pos, msg);
}

/* Copy at most cap-1 bytes of s into out, replacing anything unprintable with '?'. */
static const char *printable(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = MV_MIN(len, cap - 1);
    for (size_t i = 0; i < n; i++) out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[n] = '\0';
    return out;
}

static struct pk_obj *new_obj(struct vm *v, enum pk_kind kind)
{
    if (v->objects >= PK_MAX_OBJECTS) {
        v->fail = bad(v, MEDVLM_ERR_LIMIT, "more than %u pickle objects (limit)", PK_MAX_OBJECTS);
        return NULL;
    }
    struct pk_obj *o = mv_arena_alloc(&v->objs, sizeof *o);
    if (!o) {
        v->fail = MEDVLM_ERR_NOMEM;
        return NULL;
    }
    memset(o, 0, sizeof *o);
    o->kind = kind;
    v->objects++;
    return o;
}

static enum medvlm_status add_item(struct vm *v, struct pk_obj *c, struct pk_obj *x)
{
    if (v->items >= PK_MAX_ITEMS)
        return bad(v, MEDVLM_ERR_LIMIT, "more than %u container items (limit)", PK_MAX_ITEMS);
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 4;
        struct pk_obj **items = mv_arena_alloc(&v->objs, cap * sizeof *items);
        if (!items) return MEDVLM_ERR_NOMEM;
        if (c->n) memcpy(items, c->items, c->n * sizeof *items);
        c->items = items;
        c->cap = cap;
    }
    c->items[c->n++] = x;
    v->items++;
    return MEDVLM_OK;
}

static enum medvlm_status push(struct vm *v, struct pk_obj *o)
{
    if (!o) return v->fail; /* new_obj already set the message */
    if (v->sp == v->stack_cap) {
        if (v->sp >= PK_MAX_STACK)
            return bad(v, MEDVLM_ERR_LIMIT, "pickle stack deeper than %u (limit)", PK_MAX_STACK);
        size_t cap = v->stack_cap ? 2 * v->stack_cap : 64;
        struct pk_obj **s = mv_realloc(v->stack, cap * sizeof *s);
        if (!s) return MEDVLM_ERR_NOMEM;
        v->stack = s;
        v->stack_cap = cap;
    }
    v->stack[v->sp++] = o;
    return MEDVLM_OK;
}

static size_t floor_sp(const struct vm *v)
{
    return v->n_marks ? v->marks[v->n_marks - 1] : 0;
}

static struct pk_obj *pop(struct vm *v)
{
    if (v->sp <= floor_sp(v)) {
        bad(v, MEDVLM_ERR_FORMAT, "pickle stack underflow (corrupt data.pkl)");
        return NULL;
    }
    return v->stack[--v->sp];
}

static struct pk_obj *top(struct vm *v)
{
    if (v->sp <= floor_sp(v)) {
        bad(v, MEDVLM_ERR_FORMAT, "pickle stack is empty where a value is needed");
        return NULL;
    }
    return v->stack[v->sp - 1];
}

/* Items since the last MARK: *first is their start in the stack, the mark is removed. */
static enum medvlm_status pop_mark(struct vm *v, size_t *first)
{
    if (!v->n_marks) return bad(v, MEDVLM_ERR_FORMAT, "opcode needs a MARK but there is none");
    *first = v->marks[--v->n_marks];
    return MEDVLM_OK;
}

static enum medvlm_status need(struct vm *v, size_t n)
{
    if (v->len - v->pos < n)
        return bad(v, MEDVLM_ERR_FORMAT, "data.pkl ends inside an opcode (truncated)");
    return MEDVLM_OK;
}

static uint64_t rd_le(const unsigned char *p, int n)
{
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = (x << 8) | p[i];
    return x;
}

static enum medvlm_status push_int(struct vm *v, int64_t x)
{
    struct pk_obj *o = new_obj(v, PK_INT);
    if (o) o->i = x;
    return push(v, o);
}

static enum medvlm_status push_str(struct vm *v, size_t n)
{
    enum medvlm_status st = need(v, n);
    if (st) return st;
    struct pk_obj *o = new_obj(v, PK_STR);
    if (o) {
        o->s = (const char *)v->p + v->pos;
        o->len = n;
    }
    v->pos += n;
    return push(v, o);
}

static enum medvlm_status make_seq(struct vm *v, enum pk_kind kind, size_t first)
{
    struct pk_obj *o = new_obj(v, kind);
    if (!o) return v->fail;
    for (size_t i = first; i < v->sp; i++) {
        enum medvlm_status st = add_item(v, o, v->stack[i]);
        if (st) return st;
    }
    v->sp = first;
    return push(v, o);
}

static bool str_eq(const struct pk_obj *o, const char *s)
{
    return o->kind == PK_STR && o->len == strlen(s) && memcmp(o->s, s, o->len) == 0;
}

static enum medvlm_status find_global(struct vm *v, const char *mod, size_t mlen, const char *name,
                                      size_t nlen)
{
    for (size_t i = 0; i < MV_ARRAY_LEN(allowed); i++) {
        if (strlen(allowed[i].module) == mlen && memcmp(allowed[i].module, mod, mlen) == 0 &&
            strlen(allowed[i].name) == nlen && memcmp(allowed[i].name, name, nlen) == 0) {
            struct pk_obj *o = new_obj(v, PK_GLOBAL);
            if (o) {
                o->global = allowed[i].g;
                o->dtype = allowed[i].dtype;
            }
            return push(v, o);
        }
    }
    char m[80], n[80];
    return bad(v, MEDVLM_ERR_UNSUPPORTED,
               "refusing pickle global %s.%s: only collections.OrderedDict, "
               "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and "
               "torch.<X>Storage are allowed in a weights file (nothing was imported or run)",
               printable(m, sizeof m, mod, mlen), printable(n, sizeof n, name, nlen));
}

/* GLOBAL: "module\nname\n" */
static enum medvlm_status op_global(struct vm *v)
{
    const char *line[2];
    size_t llen[2];
    for (int k = 0; k < 2; k++) {
        const char *s = (const char *)v->p + v->pos;
        size_t avail = MV_MIN(v->len - v->pos, (size_t)PK_MAX_LINE + 1);
        const char *nl = memchr(s, '\n', avail);
        if (!nl)
            return bad(v, MEDVLM_ERR_FORMAT, "GLOBAL opcode without a newline-ended %s",
                       k ? "name" : "module");
        line[k] = s;
        llen[k] = (size_t)(nl - s);
        v->pos += llen[k] + 1;
    }
    return find_global(v, line[0], llen[0], line[1], llen[1]);
}

static bool as_int(const struct pk_obj *o, int64_t *x)
{
    if (o->kind != PK_INT && o->kind != PK_BOOL) return false;
    *x = o->i;
    return true;
}

/* persistent_load(('storage', torch.<X>Storage, key, location, numel)) */
static enum medvlm_status op_persid(struct vm *v)
{
    struct pk_obj *pid = pop(v);
    if (!pid) return MEDVLM_ERR_FORMAT;
    int64_t numel;
    if (pid->kind != PK_TUPLE || pid->n != 5 || !str_eq(pid->items[0], "storage") ||
        pid->items[1]->kind != PK_GLOBAL || pid->items[1]->global != G_STORAGE ||
        pid->items[2]->kind != PK_STR || pid->items[3]->kind != PK_STR ||
        !as_int(pid->items[4], &numel))
        return bad(v, MEDVLM_ERR_FORMAT,
                   "persistent id must be ('storage', torch.<X>Storage, key, location, numel), "
                   "got a %s of %zu items",
                   kind_name(pid->kind), pid->kind == PK_TUPLE ? pid->n : (size_t)0);
    if (numel < 0)
        return bad(v, MEDVLM_ERR_FORMAT, "storage has negative size %lld", (long long)numel);
    const struct pk_obj *key = pid->items[2];
    if (key->len == 0 || key->len > 255 || memchr(key->s, '\0', key->len) ||
        memchr(key->s, '/', key->len))
        return bad(v, MEDVLM_ERR_FORMAT, "storage key must be 1-255 characters without '/' or NUL");
    struct pk_obj *o = new_obj(v, PK_STORAGE);
    if (o) {
        o->dtype = pid->items[1]->dtype;
        o->s = key->s;
        o->len = key->len;
        o->i = numel;
    }
    return push(v, o);
}

static enum medvlm_status int_tuple(struct vm *v, const struct pk_obj *o, const char *what,
                                    int64_t *out, int *n)
{
    if (o->kind != PK_TUPLE)
        return bad(v, MEDVLM_ERR_FORMAT, "tensor %s must be a tuple, got %s", what,
                   kind_name(o->kind));
    if (o->n > MEDVLM_MAX_DIMS)
        return bad(v, MEDVLM_ERR_UNSUPPORTED, "tensor has %zu dimensions (at most %d supported)",
                   o->n, MEDVLM_MAX_DIMS);
    for (size_t i = 0; i < o->n; i++) {
        if (!as_int(o->items[i], &out[i]) || out[i] < 0)
            return bad(v, MEDVLM_ERR_FORMAT, "tensor %s must hold non-negative integers", what);
    }
    *n = (int)o->n;
    return MEDVLM_OK;
}

static enum medvlm_status rebuild_tensor(struct vm *v, const struct pk_obj *args,
                                         struct pk_obj **out)
{
    enum medvlm_status st;
    if (args->n != 6 && args->n != 7)
        return bad(v, MEDVLM_ERR_FORMAT, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu",
                   args->n);
    const struct pk_obj *s = args->items[0];
    int64_t offset;
    if (s->kind != PK_STORAGE)
        return bad(v, MEDVLM_ERR_FORMAT,
                   "_rebuild_tensor_v2: first argument must be a storage, "
                   "got %s",
                   kind_name(s->kind));
    if (!as_int(args->items[1], &offset) || offset < 0)
        return bad(v, MEDVLM_ERR_FORMAT,
                   "_rebuild_tensor_v2: storage offset must be a "
                   "non-negative integer");
    struct pk_obj *o = new_obj(v, PK_TENSOR);
    if (!o) return v->fail;
    o->t = mv_arena_alloc(&v->objs, sizeof *o->t);
    if (!o->t) return MEDVLM_ERR_NOMEM;
    struct mv_torch_tensor *t = o->t;
    memset(t, 0, sizeof *t);
    int nstride;
    if ((st = int_tuple(v, args->items[2], "size", t->shape, &t->ndim))) return st;
    if ((st = int_tuple(v, args->items[3], "stride", t->stride, &nstride))) return st;
    if (nstride != t->ndim)
        return bad(v, MEDVLM_ERR_FORMAT, "tensor size has %d dimensions but stride has %d", t->ndim,
                   nstride);
    if (args->items[4]->kind != PK_BOOL && args->items[4]->kind != PK_INT)
        return bad(v, MEDVLM_ERR_FORMAT, "_rebuild_tensor_v2: requires_grad must be a bool");
    t->dtype = s->dtype;
    t->storage_numel = (uint64_t)s->i;
    t->offset = (uint64_t)offset;
    o->storage = s; /* its key is copied at the end, with the names */
    *out = o;
    return MEDVLM_OK;
}

static enum medvlm_status op_reduce(struct vm *v)
{
    struct pk_obj *args = pop(v), *fn = args ? pop(v) : NULL, *res = NULL;
    if (!fn) return MEDVLM_ERR_FORMAT;
    if (args->kind != PK_TUPLE)
        return bad(v, MEDVLM_ERR_FORMAT, "REDUCE arguments must be a tuple, got %s",
                   kind_name(args->kind));
    if (fn->kind != PK_GLOBAL)
        return bad(v, MEDVLM_ERR_FORMAT, "REDUCE on a %s, which is not callable",
                   kind_name(fn->kind));
    switch (fn->global) {
    case G_ORDERED_DICT:
        if (args->n != 0)
            return bad(v, MEDVLM_ERR_UNSUPPORTED, "OrderedDict() with arguments is not supported");
        res = new_obj(v, PK_DICT);
        break;
    case G_REBUILD_TENSOR: {
        enum medvlm_status st = rebuild_tensor(v, args, &res);
        if (st) return st;
        break;
    }
    case G_REBUILD_PARAM:
        if (args->n != 3 || args->items[0]->kind != PK_TENSOR)
            return bad(v, MEDVLM_ERR_FORMAT,
                       "_rebuild_parameter takes (tensor, requires_grad, hooks)");
        res = args->items[0];
        break;
    case G_STORAGE:
        return bad(v, MEDVLM_ERR_UNSUPPORTED,
                   "a torch storage class is called directly (only persistent ids may use it)");
    }
    return push(v, res);
}

/* Runs the machine to STOP; *result is the value STOP popped. */
static enum medvlm_status run(struct vm *v, struct pk_obj **result)
{
    enum medvlm_status st = MEDVLM_OK;
    while (v->pos < v->len) {
        v->op_pos = v->pos;
        unsigned char op = v->p[v->pos++];
        struct pk_obj *a, *b, *c;
        size_t first = 0;
        switch (op) {
        case 0x80: /* PROTO */
            if ((st = need(v, 1))) return st;
            if (v->p[v->pos] > 5)
                return bad(v, MEDVLM_ERR_UNSUPPORTED, "pickle protocol %u (at most 5 known)",
                           v->p[v->pos]);
            v->pos++;
            break;
        case 0x95: /* FRAME: a length hint */
            if ((st = need(v, 8))) return st;
            v->pos += 8;
            break;
        case '.': /* STOP */
            if (!(*result = pop(v))) return MEDVLM_ERR_FORMAT;
            return MEDVLM_OK;
        case '(': /* MARK */
            if (v->n_marks == v->marks_cap) {
                if (v->n_marks >= PK_MAX_MARKS)
                    return bad(v, MEDVLM_ERR_LIMIT, "more than %u nested MARKs (limit)",
                               PK_MAX_MARKS);
                size_t cap = v->marks_cap ? 2 * v->marks_cap : 16;
                size_t *m = mv_realloc(v->marks, cap * sizeof *m);
                if (!m) return MEDVLM_ERR_NOMEM;
                v->marks = m;
                v->marks_cap = cap;
            }
            v->marks[v->n_marks++] = v->sp;
            break;
        case 'N':
            st = push(v, new_obj(v, PK_NONE));
            break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            if ((a = new_obj(v, PK_BOOL))) a->i = op == 0x88;
            st = push(v, a);
            break;
        case 'K': /* BININT1 */
            if ((st = need(v, 1))) return st;
            st = push_int(v, v->p[v->pos++]);
            break;
        case 'M': /* BININT2 */
            if ((st = need(v, 2))) return st;
            st = push_int(v, (int64_t)rd_le(v->p + v->pos, 2));
            v->pos += 2;
            break;
        case 'J': /* BININT: signed 32-bit */
            if ((st = need(v, 4))) return st;
            st = push_int(v, (int32_t)(uint32_t)rd_le(v->p + v->pos, 4));
            v->pos += 4;
            break;
        case 0x8a:   /* LONG1: n-byte two's complement */
        case 0x8b: { /* LONG4 */
            int w = op == 0x8a ? 1 : 4;
            if ((st = need(v, (size_t)w))) return st;
            uint64_t n = rd_le(v->p + v->pos, w);
            v->pos += (size_t)w;
            if (n > 8)
                return bad(v, MEDVLM_ERR_UNSUPPORTED, "integer of %llu bytes (at most 8)",
                           (unsigned long long)n);
            if ((st = need(v, (size_t)n))) return st;
            uint64_t x = rd_le(v->p + v->pos, (int)n);
            if (n > 0 && n < 8 && (v->p[v->pos + n - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n);
            v->pos += (size_t)n;
            st = push_int(v, (int64_t)x);
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            if ((st = need(v, 8))) return st;
            v->pos += 8;
            st = push(v, new_obj(v, PK_FLOAT)); /* the value is never needed */
            break;
        }
        case 'X':   /* BINUNICODE */
        case 'T': { /* BINSTRING */
            if ((st = need(v, 4))) return st;
            uint64_t n = rd_le(v->p + v->pos, 4);
            if (op == 'T' && n > INT32_MAX)
                return bad(v, MEDVLM_ERR_FORMAT, "BINSTRING with negative length");
            v->pos += 4;
            st = push_str(v, (size_t)n);
            break;
        }
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U':  /* SHORT_BINSTRING */
            if ((st = need(v, 1))) return st;
            st = push_str(v, v->p[v->pos++]);
            break;
        case 0x8d: { /* BINUNICODE8 */
            if ((st = need(v, 8))) return st;
            uint64_t n = rd_le(v->p + v->pos, 8);
            v->pos += 8;
            if (n > v->len - v->pos)
                return bad(v, MEDVLM_ERR_FORMAT, "string of %llu bytes runs past the end",
                           (unsigned long long)n);
            st = push_str(v, (size_t)n);
            break;
        }
        case ')':
            st = push(v, new_obj(v, PK_TUPLE));
            break;
        case ']':
            st = push(v, new_obj(v, PK_LIST));
            break;
        case '}':
            st = push(v, new_obj(v, PK_DICT));
            break;
        case 't': /* TUPLE */
        case 'l': /* LIST */
            if ((st = pop_mark(v, &first))) return st;
            st = make_seq(v, op == 't' ? PK_TUPLE : PK_LIST, first);
            break;
        case 'd': /* DICT */
            if ((st = pop_mark(v, &first))) return st;
            if ((v->sp - first) % 2)
                return bad(v, MEDVLM_ERR_FORMAT, "DICT with an odd number of items");
            st = make_seq(v, PK_DICT, first);
            break;
        case 0x85: /* TUPLE1..3 */
        case 0x86:
        case 0x87: {
            size_t n = (size_t)(op - 0x84);
            if (v->sp - floor_sp(v) < n)
                return bad(v, MEDVLM_ERR_FORMAT, "TUPLE%zu with %zu values on the stack", n,
                           v->sp - floor_sp(v));
            st = make_seq(v, PK_TUPLE, v->sp - n);
            break;
        }
        case 'a': /* APPEND */
            if (!(a = pop(v)) || !(b = top(v))) return MEDVLM_ERR_FORMAT;
            if (b->kind != PK_LIST)
                return bad(v, MEDVLM_ERR_FORMAT, "APPEND to a %s", kind_name(b->kind));
            st = add_item(v, b, a);
            break;
        case 'e': /* APPENDS */
        case 'u': /* SETITEMS */
            if ((st = pop_mark(v, &first))) return st;
            if (first <= floor_sp(v))
                return bad(v, MEDVLM_ERR_FORMAT,
                           "%s needs a container below its MARK, the stack "
                           "is empty there",
                           op == 'e' ? "APPENDS" : "SETITEMS");
            b = v->stack[first - 1];
            if (b->kind != (op == 'e' ? PK_LIST : PK_DICT))
                return bad(v, MEDVLM_ERR_FORMAT, "%s to a %s", op == 'e' ? "APPENDS" : "SETITEMS",
                           kind_name(b->kind));
            if (op == 'u' && (v->sp - first) % 2)
                return bad(v, MEDVLM_ERR_FORMAT, "SETITEMS with an odd number of items");
            for (size_t i = first; i < v->sp && !st; i++) st = add_item(v, b, v->stack[i]);
            v->sp = first;
            break;
        case 's': /* SETITEM */
            if (!(a = pop(v)) || !(b = pop(v)) || !(c = top(v))) return MEDVLM_ERR_FORMAT;
            if (c->kind != PK_DICT)
                return bad(v, MEDVLM_ERR_FORMAT, "SETITEM on a %s", kind_name(c->kind));
            if (!(st = add_item(v, c, b))) st = add_item(v, c, a);
            break;
        case 'b': /* BUILD: OrderedDict state such as _metadata; ignored */
            if (!(a = pop(v)) || !(b = top(v))) return MEDVLM_ERR_FORMAT;
            if (b->kind != PK_DICT)
                return bad(v, MEDVLM_ERR_UNSUPPORTED,
                           "BUILD on a %s (only dict state is "
                           "accepted)",
                           kind_name(b->kind));
            break;
        case '0': /* POP */
            if (!pop(v)) return MEDVLM_ERR_FORMAT;
            break;
        case '1': /* POP_MARK */
            if ((st = pop_mark(v, &first))) return st;
            v->sp = first;
            break;
        case '2': /* DUP */
            if (!(a = top(v))) return MEDVLM_ERR_FORMAT;
            st = push(v, a);
            break;
        case 'h':    /* BINGET */
        case 'j':    /* LONG_BINGET */
        case 'q':    /* BINPUT */
        case 'r':    /* LONG_BINPUT */
        case 0x94: { /* MEMOIZE */
            size_t idx;
            if (op == 0x94) {
                idx = v->memo_count;
            } else {
                int w = op == 'h' || op == 'q' ? 1 : 4;
                if ((st = need(v, (size_t)w))) return st;
                idx = (size_t)rd_le(v->p + v->pos, w);
                v->pos += (size_t)w;
            }
            if (op == 'h' || op == 'j') {
                if (idx >= v->memo_cap || !v->memo[idx])
                    return bad(v, MEDVLM_ERR_FORMAT, "memo entry %zu read before it was written",
                               idx);
                st = push(v, v->memo[idx]);
                break;
            }
            if (!(a = top(v))) return MEDVLM_ERR_FORMAT;
            if (idx >= PK_MAX_MEMO)
                return bad(v, MEDVLM_ERR_LIMIT, "memo index %zu over the limit %u", idx,
                           PK_MAX_MEMO);
            if (idx >= v->memo_cap) {
                size_t cap = MV_MAX(2 * v->memo_cap, idx + 1);
                cap = MV_MIN(MV_MAX(cap, (size_t)64), (size_t)PK_MAX_MEMO);
                struct pk_obj **m = mv_realloc(v->memo, cap * sizeof *m);
                if (!m) return MEDVLM_ERR_NOMEM;
                memset(m + v->memo_cap, 0, (cap - v->memo_cap) * sizeof *m);
                v->memo = m;
                v->memo_cap = cap;
            }
            if (!v->memo[idx]) v->memo_count++;
            v->memo[idx] = a;
            break;
        }
        case 'c':
            st = op_global(v);
            break;
        case 0x93: /* STACK_GLOBAL */
            if (!(b = pop(v)) || !(a = pop(v))) return MEDVLM_ERR_FORMAT;
            if (a->kind != PK_STR || b->kind != PK_STR)
                return bad(v, MEDVLM_ERR_FORMAT, "STACK_GLOBAL needs two strings");
            st = find_global(v, a->s, a->len, b->s, b->len);
            break;
        case 'Q':
            st = op_persid(v);
            break;
        case 'R':
            st = op_reduce(v);
            break;
        default:
            return bad(v, MEDVLM_ERR_UNSUPPORTED,
                       "pickle opcode 0x%02x is not allowed in a weights file (corrupt or not a "
                       "torch.save state dict)",
                       op);
        }
        if (st) return st;
    }
    return bad(v, MEDVLM_ERR_FORMAT, "data.pkl ends without STOP (truncated)");
}

enum medvlm_status mv_pickle_state_dict(const char *what, const void *buf, size_t len,
                                        struct mv_arena *arena, struct mv_torch_tensor **out,
                                        int *count)
{
    struct vm v = {.what = what, .p = buf, .len = len};
    struct pk_obj *res = NULL;
    enum medvlm_status st;
    *out = NULL;
    *count = 0;
    mv_arena_init(&v.objs, 64 * 1024);
    if ((st = run(&v, &res))) goto fail;
    v.op_pos = v.pos;
    if (res->kind != PK_DICT) {
        st = bad(&v, MEDVLM_ERR_FORMAT,
                 "data.pkl holds a %s, expected a dict of tensors (a "
                 "state dict)",
                 kind_name(res->kind));
        goto fail;
    }
    size_t n = res->n / 2;
    if (n > INT32_MAX / 2) {
        st = bad(&v, MEDVLM_ERR_LIMIT, "state dict of %zu entries", n);
        goto fail;
    }
    struct mv_torch_tensor *t = mv_arena_alloc(arena, (n ? n : 1) * sizeof *t);
    if (!t) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const struct pk_obj *k = res->items[2 * i], *val = res->items[2 * i + 1];
        char name[80];
        if (k->kind != PK_STR || memchr(k->s, '\0', k->len) || k->len == 0) {
            st = bad(&v, MEDVLM_ERR_FORMAT,
                     "state dict key %zu is a %s, expected a non-empty "
                     "name",
                     i, kind_name(k->kind));
            goto fail;
        }
        if (val->kind != PK_TENSOR) {
            st = bad(&v, MEDVLM_ERR_UNSUPPORTED,
                     "state dict entry \"%s\" is a %s, expected a "
                     "tensor",
                     printable(name, sizeof name, k->s, k->len), kind_name(val->kind));
            goto fail;
        }
        t[i] = *val->t;
        const struct pk_obj *s = val->storage;
        t[i].name = mv_arena_strndup(arena, k->s, k->len);
        t[i].storage_key = mv_arena_strndup(arena, s->s, s->len);
        if (!t[i].name || !t[i].storage_key) {
            st = MEDVLM_ERR_NOMEM;
            goto fail;
        }
    }
    *out = t;
    *count = (int)n;
fail:
    mv_arena_free(&v.objs);
    mv_free(v.stack);
    mv_free(v.marks);
    mv_free(v.memo);
    return st;
}

/* Fuzz target: plugin option sets (plugin/host.c validation, then each real plugin's create).
 * The options normally come from Lua tables or "key=value" text; here the fuzz bytes build them:
 * byte 0 picks a plugin of build/plugins, then each record sets one option: a declared name, the
 * host-supplied "vocab", a random or misspelled name; as a number (raw double bits: NaN, inf,
 * huge, negative, tiny), a string (raw bytes or an allowed value), a bool, or CLI text. Every
 * set must either create an instance or be refused with a message; a crash, a leak or a refusal
 * without a message is a bug (in the host or in the plugin).
 * The registry is loaded once on the first input and never changed afterwards (dlopen of every
 * plugin per input would dominate the run); nothing else survives an input. */
#include "fuzz_util.h"
#include "plugin/host.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static unsigned next_byte(reader *r) {
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

/* A NUL-terminated string of up to 63 bytes from the input (length byte, then bytes). */
static void next_str(reader *r, char *out) {
    size_t len = next_byte(r) % 64;
    size_t i = 0;
    for (; i < len && r->n; i++)
        out[i] = (char)next_byte(r);
    out[i] = '\0';
}

static plugin_registry *registry(void) {
    static plugin_registry *reg;
    if (!reg) {
        error e = {0};
        char refusals[4096] = "";
        if (plugin_registry_open(&reg, &e) ||
            plugin_registry_load_default(reg, refusals, sizeof refusals, &e) < 0 ||
            plugin_registry_count(reg) == 0) {
            fprintf(stderr, "fuzz_plugin_opts: no plugins (%s %s)\n", e.msg, refusals);
            abort();
        }
    }
    return reg;
}

static const double specials[] = {
    NAN,    INFINITY, -INFINITY, -1,     0,       1,      2,        0.5,      -0.5, 1e300,
    -1e300, 1e-300,   -0.0,      0x1p63, -0x1p63, 0x1p53, 16777216, 16777217, 1e9,  4294967297.0};
#define N_SPECIALS (sizeof specials / sizeof specials[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    plugin_registry *reg = registry();
    reader r = {data, size};
    const plugin_entry *en = plugin_registry_at(reg, next_byte(&r) % plugin_registry_count(reg));
    const hdlm_option *decl = en->desc->options;
    size_t nd = 0;
    while (decl && decl[nd].name)
        nd++;
    plugin_opts *o = plugin_opts_new();
    if (!o) return 0;
    for (int rec = 0; rec < 16 && r.n; rec++) {
        unsigned op = next_byte(&r);
        char key[64], str[64];
        unsigned pick = next_byte(&r); /* always read: the record layout does not depend on nd */
        const hdlm_option *d = nd ? &decl[pick % nd] : NULL;
        switch (op & 3) {
        case 0:
            snprintf(key, sizeof key, "%s", d ? d->name : "vocab");
            break;
        case 1:
            snprintf(key, sizeof key, "vocab");
            break;
        case 2:
            next_str(&r, key);
            break;
        default: /* a one-letter typo of a declared name */
            snprintf(key, sizeof key, "%s", d ? d->name : "x");
            key[next_byte(&r) % (strlen(key) + 1)] = (char)('a' + next_byte(&r) % 26);
            break;
        }
        int rc = 0;
        switch ((op >> 2) & 7) {
        case 0: { /* any double, from its bits */
            uint64_t bits = 0;
            for (int i = 0; i < 8; i++)
                bits |= (uint64_t)next_byte(&r) << (8 * i);
            double v;
            memcpy(&v, &bits, sizeof v);
            rc = plugin_opts_set_number(o, key, v);
            break;
        }
        case 1:
            rc = plugin_opts_set_number(o, key, specials[next_byte(&r) % N_SPECIALS]);
            break;
        case 2:
            next_str(&r, str);
            rc = plugin_opts_set_string(o, key, str);
            break;
        case 3: { /* one of the allowed values, or the default, of the chosen declaration */
            const char *src = d && d->allow ? d->allow : d && d->def ? d->def : "";
            snprintf(str, sizeof str, "%s", src);
            char *bar = strchr(str, '|');
            if (bar && (next_byte(&r) & 1))
                memmove(str, bar + 1, strlen(bar));
            else if (bar)
                *bar = '\0';
            rc = plugin_opts_set_string(o, key, str);
            break;
        }
        case 4:
            rc = plugin_opts_set_bool(o, key, (int)(next_byte(&r) & 1));
            break;
        case 5:
            next_str(&r, str);
            rc = plugin_opts_set_text(o, key, str);
            break;
        default: /* a small integer, the most common real value */
            rc = plugin_opts_set_number(o, key, (double)(int8_t)next_byte(&r));
            break;
        }
        FUZZ_REQUIRE(rc == HDLM_OK);
    }
    plugin_instance *inst = NULL;
    error e = {0};
    /* takes ownership of o, also on failure */
    int rc = plugin_instance_create(reg, en->desc->kind, en->desc->name, o, NULL, &inst, &e);
    if (rc == HDLM_OK) {
        FUZZ_REQUIRE(inst != NULL);
        plugin_instance_destroy(inst);
    } else {
        FUZZ_REQUIRE(inst == NULL && e.msg[0] != '\0');
    }
    return 0;
}

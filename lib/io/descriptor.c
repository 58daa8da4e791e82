/* The JSON model descriptor (docs/SPECIFICATION.md "Descriptor"): parse
 * with cJSON into a tg_desc with every default filled in and every
 * constraint checked, and write a tg_desc back as the full, compact JSON the reference accepts. */
#include "descriptor.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "json.h"

#define PATH_MAX_LEN 160
#define MAX_DIM 65536
#define MAX_DEPTH 1024
#define MAX_IMAGE 1024
#define MAX_MLP 64
#define MAX_CONV_WIDTH 4096         /* discriminator.widths[i] */
#define MAX_CONV_BLOCKS 64          /* discriminator.blocks[i] */
#define MAX_BIG (1 << 20)           /* latent_dim, batches, n_critic, radius */
#define MAX_CLASSES 65536
#define MAX_CLASS_NAME 255
#define DESC_MAX_NESTING 16         /* a descriptor is 4 levels deep */
#define MAX_EXACT 9007199254740992.0 /* 2^53: the largest exactly representable integer range */

static const char *const norm_names[] = {"layernorm", "pixelnorm"};
static const char *const output_names[] = {"linear", "tanh"};
static const char *const loss_names[] = {"wgan-gp-eps", "wgan-gp", "hinge", "lsgan"};
static const char *const optim_names[] = {"adam", "sgd"};
/* training.precision, in TG_PRECISION_* order */
static const char *const precision_names[] = {"f32", "bf16"};
static const char *const aug_names[] = {"translation", "cutout", "color"};
static const char *const dkind_names[] = {"transformer", "conv"};
static const char *const down_names[] = {"avgpool", "stride"};
static const char *const pool_names[] = {"sum", "mean"};
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------ messages */

/* The shortest decimal that reads back as the same double, laid out like
 * Python's repr (plain between 1e-4 and 1e16, else exponent), with the
 * locale's decimal point turned into '.', since JSON knows no other. */
static void fmt_double(char *buf, size_t n, double v)
{
    int p = 1;
    for (; p < 17; p++) {
        snprintf(buf, n, "%.*e", p - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    snprintf(buf, n, "%.*e", p - 1, v);
    const char *e = strchr(buf, 'e');
    int exp10 = e ? atoi(e + 1) : 0;
    if (isfinite(v) && exp10 >= -4 && exp10 < 16) /* same p significant digits, no exponent */
        snprintf(buf, n, "%.*f", p - 1 - exp10 > 0 ? p - 1 - exp10 : 0, v);
    const char *dp = localeconv()->decimal_point;
    size_t dl = dp ? strlen(dp) : 0;
    if (dl && strcmp(dp, ".") != 0) {
        char *p = strstr(buf, dp);
        if (p) {
            *p = '.';
            memmove(p + 1, p + dl, strlen(p + dl) + 1);
        }
    }
}

/* A short, printable rendering of a JSON value for "(got ...)". */
static void describe(char *buf, size_t n, const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        fmt_double(buf, n, v->valuedouble);
    } else if (cJSON_IsString(v)) {
        char s[48];
        size_t i = 0;
        const char *p = v->valuestring;
        for (; p[i] && i < 40; i++) /* keep control bytes out of the message */
            s[i] = (unsigned char)p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i];
        s[i] = '\0';
        snprintf(buf, n, "\"%s%s\"", s, p[i] ? "..." : "");
    } else if (cJSON_IsTrue(v)) {
        snprintf(buf, n, "true");
    } else if (cJSON_IsFalse(v)) {
        snprintf(buf, n, "false");
    } else if (cJSON_IsNull(v)) {
        snprintf(buf, n, "null");
    } else if (cJSON_IsArray(v)) {
        snprintf(buf, n, "an array");
    } else if (cJSON_IsObject(v)) {
        snprintf(buf, n, "an object");
    } else {
        snprintf(buf, n, "an invalid value");
    }
}

static tg_status bad(const char *path, const char *what, const cJSON *v)
{
    char got[64];
    describe(got, sizeof got, v);
    return tg_fail(TG_ERR_DESCRIPTOR, "%s: %s (got %s)", path, what, got);
}

/* The precisions keep every path within PATH_MAX_LEN (only absurdly long
 * user keys get cut). */
static void join(char *out, const char *prefix, const char *key)
{
    if (prefix[0])
        snprintf(out, PATH_MAX_LEN, "%.80s.%.64s", prefix, key);
    else
        snprintf(out, PATH_MAX_LEN, "%.64s", key);
}

static void index_path(char *out, const char *prefix, int i)
{
    snprintf(out, PATH_MAX_LEN, "%.120s[%d]", prefix, i);
}

/* ------------------------------------------------------------ readers */

/* Every member of obj must be one of keys, each at most once (cJSON keeps
 * duplicates; rejecting them avoids silently picking one of two values). */
static tg_status check_keys(const cJSON *obj, const char *prefix, const char *const *keys, int nkeys)
{
    unsigned seen = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        int k = 0;
        while (k < nkeys && strcmp(c->string, keys[k]) != 0)
            k++;
        char path[PATH_MAX_LEN];
        join(path, prefix, c->string);
        if (k == nkeys)
            return tg_fail(TG_ERR_DESCRIPTOR, "unknown key '%s'", path);
        if (seen & (1u << k))
            return tg_fail(TG_ERR_DESCRIPTOR, "duplicate key '%s'", path);
        seen |= 1u << k;
    }
    return TG_OK;
}

static const char *int_phrase(double lo)
{
    return lo == 1 ? "must be a positive integer"
           : lo == 0 ? "must be a non-negative integer"
                     : "must be an integer";
}

/* An integer in [lo, hi]; 4.0 counts as an integer, 4.5 and "4" do not. */
static tg_status want_int(const cJSON *v, const char *path, double lo, double hi, double *out)
{
    const char *phrase = int_phrase(lo);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || floor(v->valuedouble) != v->valuedouble ||
        v->valuedouble < lo)
        return bad(path, phrase, v);
    if (v->valuedouble > hi) {
        char what[96];
        snprintf(what, sizeof what, "%s <= %.0f", phrase, hi);
        return bad(path, what, v);
    }
    *out = v->valuedouble + 0.0; /* -0 -> 0 */
    return TG_OK;
}

static tg_status get_int(const cJSON *obj, const char *prefix, const char *key, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return TG_OK; /* keep the default */
    char path[PATH_MAX_LEN];
    join(path, prefix, key);
    double x;
    TG_TRY(want_int(v, path, lo, hi, &x));
    *out = (int)x;
    return TG_OK;
}

/* A finite number in the interval lo..hi; *_open excludes the end point. */
static tg_status want_real(const cJSON *v, const char *path, double lo, int lo_open, double hi,
                           int hi_open, double *out)
{
    char what[96];
    if (isinf(hi))
        snprintf(what, sizeof what, "must be a finite number %s %g", lo_open ? ">" : ">=", lo);
    else
        snprintf(what, sizeof what, "must be a number in %c%g, %g%c", lo_open ? '(' : '[', lo, hi,
                 hi_open ? ')' : ']');
    if (!cJSON_IsNumber(v))
        return bad(path, what, v);
    double x = v->valuedouble;
    if (!isfinite(x) || (lo_open ? !(x > lo) : !(x >= lo)) || (hi_open ? !(x < hi) : !(x <= hi)))
        return bad(path, what, v);
    *out = x;
    return TG_OK;
}

static tg_status get_real(const cJSON *obj, const char *prefix, const char *key, double lo, int lo_open,
                          double hi, int hi_open, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return TG_OK;
    char path[PATH_MAX_LEN];
    join(path, prefix, key);
    return want_real(v, path, lo, lo_open, hi, hi_open, out);
}

static tg_status want_enum(const cJSON *v, const char *path, const char *const *names, int n, int *out)
{
    if (cJSON_IsString(v))
        for (int i = 0; i < n; i++)
            if (strcmp(v->valuestring, names[i]) == 0) {
                *out = i;
                return TG_OK;
            }
    char what[128] = "must be one of ";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(what);
        snprintf(what + l, sizeof what - l, "%s\"%s\"", i ? ", " : "", names[i]);
    }
    return bad(path, what, v);
}

static tg_status get_enum(const cJSON *obj, const char *prefix, const char *key, const char *const *names,
                          int n, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return TG_OK;
    char path[PATH_MAX_LEN];
    join(path, prefix, key);
    return want_enum(v, path, names, n, out);
}

/* A top-level section: absent is fine (all defaults), otherwise an object
 * whose keys are all known. *sec is NULL when absent. */
static tg_status get_section(const cJSON *root, const char *name, const char *const *keys, int nkeys,
                             const cJSON **sec)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    *sec = NULL;
    if (!v)
        return TG_OK;
    if (!cJSON_IsObject(v))
        return bad(name, "must be an object", v);
    TG_TRY(check_keys(v, name, keys, nkeys));
    *sec = v;
    return TG_OK;
}

/* ------------------------------------------------------------ sections */

static const char *const root_keys[] = {"format", "format_version", "name", "image", "latent_dim",
                                        "generator", "discriminator", "training", "num_classes",
                                        "class_names"};
static const char *const image_keys[] = {"size", "channels"};
static const char *const gen_keys[] = {"bottom_width", "embed_dim", "depths", "heads", "mlp_ratio",
                                       "norm", "relative_position_bias", "output"};
static const char *const disc_keys[] = {"patch_size", "embed_dim", "depth", "heads", "mlp_ratio",
                                        "kind", "widths", "blocks", "down", "residual", "pool"};
/* which of them each kind takes (the rest are an error, not silently unused) */
static const char *const disc_transformer_keys[] = {"patch_size", "embed_dim", "depth", "heads",
                                                    "mlp_ratio"};
static const char *const disc_conv_keys[] = {"widths", "blocks", "down", "residual", "pool"};
static const char *const train_keys[] = {
    "loss", "gp_weight", "drift_weight", "optimizer", "g_lr", "d_lr", "beta1", "beta2",
    "adam_eps", "n_critic", "g_batch", "d_batch", "grad_clip", "ema", "diffaug",
    "sr_aux_weight", "locality", "seed", "diffaug_p", "ada", "precision", "class_loss_weight",
    "lr_schedule", "r1_gamma", "r1_interval"};
static const char *const ema_keys[] = {"half_life_kimg", "warmup", "beta"};
static const char *const ada_keys[] = {"target", "interval", "kimg"};
static const char *const loc_keys[] = {"stages", "schedule"};

static void set_defaults(tg_desc *d)
{
    d->image_size = 32, d->channels = 3;
    d->latent_dim = 256;
    d->g.bottom_width = 8, d->g.embed_dim = 384;
    d->g.nstages = 3, d->g.depths[0] = 5, d->g.depths[1] = 2, d->g.depths[2] = 2;
    d->g.heads = 4, d->g.mlp_ratio = 4;
    d->g.norm = TG_NORM_LAYERNORM, d->g.rel_bias = 0, d->g.output = TG_OUTPUT_LINEAR;
    d->d.patch_size = 4, d->d.embed_dim = 384, d->d.depth = 7, d->d.heads = 4, d->d.mlp_ratio = 4;
    d->d.kind = TG_DISC_TRANSFORMER;
    /* the conv D's defaults: AutoGAN's / SNGAN's CIFAR-10 discriminator */
    d->d.nlevels = 3, d->d.widths[0] = d->d.widths[1] = d->d.widths[2] = 128;
    d->d.blocks[0] = d->d.blocks[1] = 1, d->d.blocks[2] = 2;
    d->d.down = TG_DOWN_AVGPOOL, d->d.residual = 1, d->d.pool = TG_POOL_SUM;
    d->t.loss = TG_LOSS_WGAN_GP_EPS;
    d->t.gp_weight = 10.0, d->t.drift_weight = 0.001;
    d->t.r1_gamma = 0.0, d->t.r1_interval = TG_R1_INTERVAL_DEFAULT;
    d->t.optimizer = TG_OPTIM_ADAM;
    d->t.g_lr = 1e-4, d->t.d_lr = 1e-4, d->t.beta1 = 0.0, d->t.beta2 = 0.99, d->t.adam_eps = 1e-8;
    d->t.n_critic = 4, d->t.g_batch = 128, d->t.d_batch = 64;
    d->t.grad_clip = 5.0;
    d->t.ema = TG_EMA_HALF_LIFE, d->t.ema_half_life_kimg = 500, d->t.ema_warmup = 0.1;
    d->t.ndiffaug = 3;
    d->t.diffaug[0] = TG_AUG_TRANSLATION, d->t.diffaug[1] = TG_AUG_CUTOUT, d->t.diffaug[2] = TG_AUG_COLOR;
    d->t.diffaug_p = 1.0;
    d->t.ada_on = 0, d->t.ada_target = 0.6, d->t.ada_interval = 4, d->t.ada_kimg = 100;
    d->t.sr_aux_weight = 0.0;
    d->t.class_loss_weight = 0.0;
    d->t.loc_on = 0;
    d->t.lrs_n = 0;
    d->t.seed = 12345;
    d->t.precision = 0; /* f32 */
}

static tg_status parse_format(const cJSON *root)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!f)
        return tg_fail(TG_ERR_DESCRIPTOR, "format: required (must be \"transgan\")");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "transgan") != 0)
        return bad("format", "must be \"transgan\"", f);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "format_version");
    if (!v)
        return tg_fail(TG_ERR_DESCRIPTOR, "format_version: required (must be 1)");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1.0)
        return bad("format_version", "must be 1", v);
    return TG_OK;
}

static tg_status parse_generator(const cJSON *g, tg_desc *d)
{
    if (!g)
        return TG_OK;
    const char *p = "generator";
    TG_TRY(get_int(g, p, "bottom_width", 1, MAX_IMAGE, &d->g.bottom_width));
    TG_TRY(get_int(g, p, "embed_dim", 1, MAX_DIM, &d->g.embed_dim));
    const cJSON *dep = cJSON_GetObjectItemCaseSensitive(g, "depths");
    if (dep) {
        if (!cJSON_IsArray(dep))
            return bad("generator.depths", "must be an array of positive integers", dep);
        int n = cJSON_GetArraySize(dep);
        if (n < 1 || n > TG_MAX_STAGES)
            return tg_fail(TG_ERR_DESCRIPTOR, "generator.depths: must have 1 to %d entries (got %d)",
                           TG_MAX_STAGES, n);
        memset(d->g.depths, 0, sizeof d->g.depths);
        int i = 0;
        for (const cJSON *e = dep->child; e; e = e->next, i++) {
            char path[PATH_MAX_LEN];
            double x;
            index_path(path, "generator.depths", i);
            TG_TRY(want_int(e, path, 1, MAX_DEPTH, &x));
            d->g.depths[i] = (int)x;
        }
        d->g.nstages = n;
    }
    TG_TRY(get_int(g, p, "heads", 1, MAX_DIM, &d->g.heads));
    TG_TRY(get_int(g, p, "mlp_ratio", 1, MAX_MLP, &d->g.mlp_ratio));
    TG_TRY(get_enum(g, p, "norm", norm_names, NELEM(norm_names), &d->g.norm));
    const cJSON *rb = cJSON_GetObjectItemCaseSensitive(g, "relative_position_bias");
    if (rb) {
        if (!cJSON_IsBool(rb))
            return bad("generator.relative_position_bias", "must be true or false", rb);
        d->g.rel_bias = cJSON_IsTrue(rb) ? 1 : 0;
    }
    TG_TRY(get_enum(g, p, "output", output_names, NELEM(output_names), &d->g.output));
    return TG_OK;
}

/* An array of 1 to TG_MAX_STAGES integers in [1, hi] (discriminator.widths, .blocks). */
static tg_status get_int_array(const cJSON *obj, const char *prefix, const char *key, int hi,
                               int *vals, int *n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!a)
        return TG_OK;
    char path[PATH_MAX_LEN];
    join(path, prefix, key);
    if (!cJSON_IsArray(a))
        return bad(path, "must be an array of positive integers", a);
    int len = cJSON_GetArraySize(a);
    if (len < 1 || len > TG_MAX_STAGES)
        return tg_fail(TG_ERR_DESCRIPTOR, "%s: must have 1 to %d entries (got %d)", path,
                       TG_MAX_STAGES, len);
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        char ip[PATH_MAX_LEN];
        double x;
        index_path(ip, path, i);
        TG_TRY(want_int(e, ip, 1, hi, &x));
        vals[i] = (int)x;
    }
    for (; i < TG_MAX_STAGES; i++) /* no stale default past the end */
        vals[i] = 0;
    *n = len;
    return TG_OK;
}

static int in_list(const char *key, const char *const *keys, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(key, keys[i]) == 0)
            return 1;
    return 0;
}

static tg_status parse_discriminator(const cJSON *s, tg_desc *d)
{
    if (!s)
        return TG_OK;
    const char *p = "discriminator";
    TG_TRY(get_enum(s, p, "kind", dkind_names, NELEM(dkind_names), &d->d.kind));
    /* a key of the other kind would be silently ignored: refuse it */
    for (const cJSON *c = s->child; c; c = c->next) {
        int conv = d->d.kind == TG_DISC_CONV;
        if (conv ? in_list(c->string, disc_transformer_keys, NELEM(disc_transformer_keys))
                 : in_list(c->string, disc_conv_keys, NELEM(disc_conv_keys)))
            return tg_fail(TG_ERR_DESCRIPTOR,
                           "discriminator.%s: only with discriminator.kind \"%s\" (this one is \"%s\")",
                           c->string, dkind_names[!conv], dkind_names[conv]);
    }
    TG_TRY(get_int(s, p, "patch_size", 1, MAX_IMAGE, &d->d.patch_size));
    TG_TRY(get_int(s, p, "embed_dim", 1, MAX_DIM, &d->d.embed_dim));
    TG_TRY(get_int(s, p, "depth", 1, MAX_DEPTH, &d->d.depth));
    TG_TRY(get_int(s, p, "heads", 1, MAX_DIM, &d->d.heads));
    TG_TRY(get_int(s, p, "mlp_ratio", 1, MAX_MLP, &d->d.mlp_ratio));
    int nw = d->d.nlevels, nb = d->d.nlevels;
    TG_TRY(get_int_array(s, p, "widths", MAX_CONV_WIDTH, d->d.widths, &nw));
    TG_TRY(get_int_array(s, p, "blocks", MAX_CONV_BLOCKS, d->d.blocks, &nb));
    if (nw != nb)
        return tg_fail(TG_ERR_DESCRIPTOR,
                       "discriminator.blocks: must have one entry per level, as many as "
                       "discriminator.widths (%d; got %d)", nw, nb);
    d->d.nlevels = nw;
    TG_TRY(get_enum(s, p, "down", down_names, NELEM(down_names), &d->d.down));
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "residual");
    if (r) {
        if (!cJSON_IsBool(r))
            return bad("discriminator.residual", "must be true or false", r);
        d->d.residual = cJSON_IsTrue(r) ? 1 : 0;
    }
    TG_TRY(get_enum(s, p, "pool", pool_names, NELEM(pool_names), &d->d.pool));
    return TG_OK;
}

static tg_status parse_ema(const cJSON *v, tg_desc *d)
{
    const char *p = "training.ema";
    d->t.ema_half_life_kimg = d->t.ema_warmup = d->t.ema_beta = 0;
    if (cJSON_IsNull(v)) {
        d->t.ema = TG_EMA_NONE;
        return TG_OK;
    }
    if (!cJSON_IsObject(v))
        return bad(p, "must be null, {\"beta\": b} or {\"half_life_kimg\": h, \"warmup\": w}", v);
    TG_TRY(check_keys(v, p, ema_keys, NELEM(ema_keys)));
    const cJSON *beta = cJSON_GetObjectItemCaseSensitive(v, "beta");
    int hl = cJSON_GetObjectItemCaseSensitive(v, "half_life_kimg") != NULL;
    int wu = cJSON_GetObjectItemCaseSensitive(v, "warmup") != NULL;
    if (beta) {
        if (hl || wu)
            return tg_fail(TG_ERR_DESCRIPTOR,
                           "training.ema: give either \"beta\" or \"half_life_kimg\"/\"warmup\", not both");
        d->t.ema = TG_EMA_BETA;
        return want_real(beta, "training.ema.beta", 0, 0, 1, 1, &d->t.ema_beta);
    }
    /* The reference treats {} as "no EMA" (an empty dict is false) while
     * filling defaults would mean "EMA on": refuse the ambiguity. */
    if (!hl && !wu)
        return tg_fail(TG_ERR_DESCRIPTOR,
                       "training.ema: empty object (use null for no EMA, or give beta or half_life_kimg)");
    d->t.ema = TG_EMA_HALF_LIFE;
    d->t.ema_half_life_kimg = 500, d->t.ema_warmup = 0.1;
    TG_TRY(get_real(v, p, "half_life_kimg", 0, 0, INFINITY, 0, &d->t.ema_half_life_kimg));
    TG_TRY(get_real(v, p, "warmup", 0, 0, INFINITY, 0, &d->t.ema_warmup));
    return TG_OK;
}

/* training.ada: null (off) or an object whose missing keys take their
 * defaults ({} is all defaults; null is the way to say "off") */
static tg_status parse_ada(const cJSON *v, tg_desc *d)
{
    const char *p = "training.ada";
    d->t.ada_on = 0, d->t.ada_target = 0.6, d->t.ada_interval = 4, d->t.ada_kimg = 100;
    if (cJSON_IsNull(v))
        return TG_OK;
    if (!cJSON_IsObject(v))
        return bad(p, "must be null or {\"target\": r, \"interval\": n, \"kimg\": k}", v);
    TG_TRY(check_keys(v, p, ada_keys, NELEM(ada_keys)));
    d->t.ada_on = 1;
    TG_TRY(get_real(v, p, "target", 0, 0, 1, 0, &d->t.ada_target));
    TG_TRY(get_int(v, p, "interval", 1, MAX_BIG, &d->t.ada_interval));
    TG_TRY(get_real(v, p, "kimg", 0, 1, INFINITY, 0, &d->t.ada_kimg));
    return TG_OK;
}

static tg_status parse_diffaug(const cJSON *v, tg_desc *d)
{
    const char *p = "training.diffaug";
    if (!cJSON_IsArray(v))
        return bad(p, "must be an array of \"translation\", \"cutout\", \"color\"", v);
    d->t.ndiffaug = 0;
    memset(d->t.diffaug, 0, sizeof d->t.diffaug);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        char path[PATH_MAX_LEN];
        int k;
        index_path(path, p, i);
        TG_TRY(want_enum(e, path, aug_names, NELEM(aug_names), &k));
        for (int j = 0; j < d->t.ndiffaug; j++)
            if (d->t.diffaug[j] == k)
                return tg_fail(TG_ERR_DESCRIPTOR, "%s: \"%s\" appears twice", path, aug_names[k]);
        d->t.diffaug[d->t.ndiffaug++] = k; /* distinct, so at most 3 */
    }
    return TG_OK;
}

/* Needs d->g.nstages (stage indices are checked against it). */
static tg_status parse_locality(const cJSON *v, tg_desc *d)
{
    const char *p = "training.locality";
    d->t.loc_on = d->t.loc_nstages = d->t.loc_nsched = 0;
    memset(d->t.loc_stages, 0, sizeof d->t.loc_stages);
    memset(d->t.loc_until, 0, sizeof d->t.loc_until);
    memset(d->t.loc_radius, 0, sizeof d->t.loc_radius);
    if (cJSON_IsNull(v))
        return TG_OK;
    if (!cJSON_IsObject(v))
        return bad(p, "must be null or {\"stages\": [...], \"schedule\": [[until_g_step, radius], ...]}", v);
    TG_TRY(check_keys(v, p, loc_keys, NELEM(loc_keys)));
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(v, "stages");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(v, "schedule");
    if (!st)
        return tg_fail(TG_ERR_DESCRIPTOR, "training.locality.stages: required");
    if (!sc)
        return tg_fail(TG_ERR_DESCRIPTOR, "training.locality.schedule: required");
    if (!cJSON_IsArray(st))
        return bad("training.locality.stages", "must be an array of generator stage indices", st);
    int i = 0;
    for (const cJSON *e = st->child; e; e = e->next, i++) {
        char path[PATH_MAX_LEN], what[80];
        double x;
        index_path(path, "training.locality.stages", i);
        snprintf(what, sizeof what, "must be a generator stage index in [0, %d]", d->g.nstages - 1);
        if (!cJSON_IsNumber(e) || want_int(e, path, 0, d->g.nstages - 1, &x) != TG_OK)
            return bad(path, what, e);
        for (int j = 0; j < d->t.loc_nstages; j++)
            if (d->t.loc_stages[j] == (int)x)
                return tg_fail(TG_ERR_DESCRIPTOR, "%s: stage %d appears twice", path, (int)x);
        d->t.loc_stages[d->t.loc_nstages++] = (int)x; /* distinct and < nstages: fits */
    }
    if (!cJSON_IsArray(sc))
        return bad("training.locality.schedule", "must be an array of [until_g_step, radius] pairs", sc);
    int n = cJSON_GetArraySize(sc);
    if (n > TG_MAX_SCHEDULE)
        return tg_fail(TG_ERR_DESCRIPTOR, "training.locality.schedule: at most %d rows (got %d)",
                       TG_MAX_SCHEDULE, n);
    i = 0;
    for (const cJSON *row = sc->child; row; row = row->next, i++) {
        char path[PATH_MAX_LEN], ep[PATH_MAX_LEN];
        double until, radius;
        index_path(path, "training.locality.schedule", i);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != 2)
            return bad(path, "must be an [until_g_step, radius] pair", row);
        index_path(ep, path, 0);
        TG_TRY(want_int(row->child, ep, 0, MAX_EXACT, &until));
        index_path(ep, path, 1);
        TG_TRY(want_int(row->child->next, ep, 0, MAX_BIG, &radius));
        d->t.loc_until[i] = (int64_t)until;
        d->t.loc_radius[i] = (int)radius;
    }
    d->t.loc_nsched = n;
    d->t.loc_on = 1;
    return TG_OK;
}

/* training.lr_schedule: null or [[d_step, factor], ...], at least one point,
 * steps strictly increasing (so the piecewise-linear factor is a function). */
static tg_status parse_lr_schedule(const cJSON *v, tg_desc *d)
{
    const char *p = "training.lr_schedule";
    const char *what = "must be null or a non-empty array of [d_step, factor] points";
    d->t.lrs_n = 0;
    memset(d->t.lrs_step, 0, sizeof d->t.lrs_step);
    memset(d->t.lrs_factor, 0, sizeof d->t.lrs_factor);
    if (cJSON_IsNull(v))
        return TG_OK;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return bad(p, what, v);
    int n = cJSON_GetArraySize(v);
    if (n > TG_MAX_SCHEDULE)
        return tg_fail(TG_ERR_DESCRIPTOR, "%s: at most %d points (got %d)", p, TG_MAX_SCHEDULE, n);
    int i = 0;
    for (const cJSON *row = v->child; row; row = row->next, i++) {
        char path[PATH_MAX_LEN], ep[PATH_MAX_LEN];
        double step, factor;
        index_path(path, p, i);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != 2)
            return bad(path, "must be a [d_step, factor] point", row);
        index_path(ep, path, 0);
        TG_TRY(want_int(row->child, ep, 0, MAX_EXACT, &step));
        if (i > 0 && (int64_t)step <= d->t.lrs_step[i - 1])
            return tg_fail(TG_ERR_DESCRIPTOR, "%s: steps must increase (%" PRId64 " after %" PRId64 ")",
                           ep, (int64_t)step, d->t.lrs_step[i - 1]);
        index_path(ep, path, 1);
        TG_TRY(want_real(row->child->next, ep, 0, 0, INFINITY, 0, &factor));
        d->t.lrs_step[i] = (int64_t)step;
        d->t.lrs_factor[i] = factor;
    }
    d->t.lrs_n = n;
    return TG_OK;
}

static tg_status parse_training(const cJSON *t, tg_desc *d)
{
    if (!t)
        return TG_OK;
    const char *p = "training";
    TG_TRY(get_enum(t, p, "loss", loss_names, NELEM(loss_names), &d->t.loss));
    TG_TRY(get_real(t, p, "gp_weight", 0, 0, INFINITY, 0, &d->t.gp_weight));
    TG_TRY(get_real(t, p, "drift_weight", 0, 0, INFINITY, 0, &d->t.drift_weight));
    TG_TRY(get_real(t, p, "r1_gamma", 0, 0, INFINITY, 0, &d->t.r1_gamma));
    TG_TRY(get_int(t, p, "r1_interval", 1, MAX_BIG, &d->t.r1_interval));
    TG_TRY(get_enum(t, p, "optimizer", optim_names, NELEM(optim_names), &d->t.optimizer));
    TG_TRY(get_real(t, p, "g_lr", 0, 0, INFINITY, 0, &d->t.g_lr));
    TG_TRY(get_real(t, p, "d_lr", 0, 0, INFINITY, 0, &d->t.d_lr));
    TG_TRY(get_real(t, p, "beta1", 0, 0, 1, 1, &d->t.beta1));
    TG_TRY(get_real(t, p, "beta2", 0, 0, 1, 1, &d->t.beta2));
    TG_TRY(get_real(t, p, "adam_eps", 0, 1, INFINITY, 0, &d->t.adam_eps));
    TG_TRY(get_int(t, p, "n_critic", 1, MAX_BIG, &d->t.n_critic));
    TG_TRY(get_int(t, p, "g_batch", 1, MAX_BIG, &d->t.g_batch));
    TG_TRY(get_int(t, p, "d_batch", 1, MAX_BIG, &d->t.d_batch));
    TG_TRY(get_real(t, p, "grad_clip", 0, 0, INFINITY, 0, &d->t.grad_clip));
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(t, "ema")))
        TG_TRY(parse_ema(v, d));
    if ((v = cJSON_GetObjectItemCaseSensitive(t, "diffaug")))
        TG_TRY(parse_diffaug(v, d));
    TG_TRY(get_real(t, p, "diffaug_p", 0, 0, 1, 0, &d->t.diffaug_p));
    if ((v = cJSON_GetObjectItemCaseSensitive(t, "ada")))
        TG_TRY(parse_ada(v, d));
    TG_TRY(get_real(t, p, "sr_aux_weight", 0, 0, INFINITY, 0, &d->t.sr_aux_weight));
    TG_TRY(get_real(t, p, "class_loss_weight", 0, 0, INFINITY, 0, &d->t.class_loss_weight));
    if ((v = cJSON_GetObjectItemCaseSensitive(t, "locality")))
        TG_TRY(parse_locality(v, d));
    if ((v = cJSON_GetObjectItemCaseSensitive(t, "lr_schedule")))
        TG_TRY(parse_lr_schedule(v, d));
    if ((v = cJSON_GetObjectItemCaseSensitive(t, "seed"))) {
        double x;
        TG_TRY(want_int(v, "training.seed", 0, MAX_EXACT, &x));
        d->t.seed = (uint64_t)x;
    }
    TG_TRY(get_enum(t, p, "precision", precision_names, NELEM(precision_names), &d->t.precision));
    return TG_OK;
}

/* The constraints between sections (docs/SPECIFICATION.md "Descriptor",
 * its table of constraints). */
static tg_status check_shapes(const tg_desc *d)
{
    int n = d->g.nstages;
    long long want = (long long)d->g.bottom_width << (n - 1);
    if (d->image_size != want)
        return tg_fail(TG_ERR_DESCRIPTOR,
                       "image.size: must equal generator.bottom_width * 2^(stages-1) = %d * %d = %lld "
                       "(got %d)",
                       d->g.bottom_width, 1 << (n - 1), want, d->image_size);
    int div = 1 << (2 * (n - 1));
    if (d->g.embed_dim % div)
        return tg_fail(TG_ERR_DESCRIPTOR,
                       "generator.embed_dim: must be divisible by 4^(stages-1) = %d (got %d)", div,
                       d->g.embed_dim);
    for (int s = 0; s < n; s++) {
        int c = tg_desc_stage_dim(d, s);
        if (d->g.heads > c || c % d->g.heads)
            return tg_fail(TG_ERR_DESCRIPTOR,
                           "generator.heads: must divide every stage's dim; stage %d has dim %d (got %d)",
                           s, c, d->g.heads);
    }
    if (d->d.kind == TG_DISC_CONV) {
        /* every level but the last halves the image */
        int div = 1 << (d->d.nlevels - 1);
        if (d->image_size % div)
            return tg_fail(TG_ERR_DESCRIPTOR,
                           "discriminator.widths: %d levels halve the image %d times, so image.size "
                           "must be divisible by %d (got %d)",
                           d->d.nlevels, d->d.nlevels - 1, div, d->image_size);
    } else if (d->image_size % d->d.patch_size)
        return tg_fail(TG_ERR_DESCRIPTOR, "discriminator.patch_size: must divide image.size %d (got %d)",
                       d->image_size, d->d.patch_size);
    else if (d->d.heads > d->d.embed_dim || d->d.embed_dim % d->d.heads)
        return tg_fail(TG_ERR_DESCRIPTOR,
                       "discriminator.heads: must divide discriminator.embed_dim %d (got %d)",
                       d->d.embed_dim, d->d.heads);
    if (d->t.sr_aux_weight > 0 && n < 2)
        return tg_fail(TG_ERR_DESCRIPTOR,
                       "training.sr_aux_weight: > 0 needs at least 2 generator stages (got 1)");
    if (d->t.class_loss_weight > 0 && d->num_classes == 0)
        return tg_fail(TG_ERR_DESCRIPTOR, "training.class_loss_weight: > 0 needs a class-conditional "
                       "model (num_classes > 0)");
    if (d->t.r1_gamma > 0 && tg_loss_has_gp(d->t.loss))
        return tg_fail(TG_ERR_DESCRIPTOR,
                       "training.r1_gamma: R1 takes the place of the wgan-gp losses' gradient "
                       "penalty; > 0 needs training.loss \"hinge\" or \"lsgan\" (got \"%s\")",
                       d->t.loss == TG_LOSS_WGAN_GP ? "wgan-gp" : "wgan-gp-eps");
    if (d->t.ada_on && d->t.ndiffaug == 0)
        return tg_fail(TG_ERR_DESCRIPTOR,
                       "training.ada: adapts the DiffAugment probability, so it needs at least one "
                       "training.diffaug op (got [])");
    return TG_OK;
}

/* class_names: null, or one distinct, non-empty string per class (so a
 * name picks one class); they travel with the descriptor into checkpoints. */
static tg_status parse_class_names(const cJSON *v, tg_desc *d)
{
    if (!v || cJSON_IsNull(v))
        return TG_OK;
    if (!cJSON_IsArray(v))
        return bad("class_names", "must be null or an array of strings", v);
    int n = cJSON_GetArraySize(v);
    if (n != d->num_classes)
        return tg_fail(TG_ERR_DESCRIPTOR, "class_names: must have num_classes = %d names (got %d)",
                       d->num_classes, n);
    if (n == 0)
        return TG_OK;
    d->class_names = tg_calloc((size_t)n, sizeof *d->class_names);
    if (!d->class_names)
        return tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory copying the class names");
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        char path[PATH_MAX_LEN];
        index_path(path, "class_names", i);
        if (!cJSON_IsString(e) || !e->valuestring[0] || strlen(e->valuestring) > MAX_CLASS_NAME)
            return bad(path, "must be a non-empty string of at most 255 bytes", e);
        for (int j = 0; j < i; j++)
            if (strcmp(d->class_names[j], e->valuestring) == 0)
                return bad(path, "must differ from every other class name", e);
        d->class_names[i] = tg_strdup(e->valuestring);
        if (!d->class_names[i])
            return tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory copying the class names");
    }
    return TG_OK;
}

static tg_status parse_root(const cJSON *root, tg_desc *d)
{
    if (!cJSON_IsObject(root))
        return bad("descriptor", "must be a JSON object", root);
    TG_TRY(parse_format(root));
    TG_TRY(check_keys(root, "", root_keys, NELEM(root_keys)));
    const cJSON *image, *gen, *disc, *train;
    TG_TRY(get_section(root, "image", image_keys, NELEM(image_keys), &image));
    TG_TRY(get_section(root, "generator", gen_keys, NELEM(gen_keys), &gen));
    TG_TRY(get_section(root, "discriminator", disc_keys, NELEM(disc_keys), &disc));
    TG_TRY(get_section(root, "training", train_keys, NELEM(train_keys), &train));

    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (name) {
        if (!cJSON_IsString(name))
            return bad("name", "must be a string", name);
        char *s = tg_strdup(name->valuestring);
        if (!s)
            return tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory copying the descriptor name");
        free(d->name);
        d->name = s;
    }
    if (image) {
        TG_TRY(get_int(image, "image", "size", 1, MAX_IMAGE, &d->image_size));
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(image, "channels");
        if (c) {
            double x;
            if (!cJSON_IsNumber(c) || want_int(c, "image.channels", 1, 4, &x) != TG_OK || x == 2)
                return bad("image.channels", "must be 1, 3 or 4", c);
            d->channels = (int)x;
        }
    }
    TG_TRY(get_int(root, "", "latent_dim", 1, MAX_BIG, &d->latent_dim));
    TG_TRY(get_int(root, "", "num_classes", 0, MAX_CLASSES, &d->num_classes));
    TG_TRY(parse_class_names(cJSON_GetObjectItemCaseSensitive(root, "class_names"), d));
    TG_TRY(parse_generator(gen, d));
    TG_TRY(parse_discriminator(disc, d));
    TG_TRY(parse_training(train, d)); /* after the generator: locality needs its stage count */
    return check_shapes(d);
}

/* 1-based line and column (in bytes) of pos within text. */
static void line_col(const char *text, const char *pos, int *line, int *col)
{
    *line = 1, *col = 1;
    for (const char *p = text; p < pos && *p; p++) {
        if (*p == '\n')
            ++*line, *col = 1;
        else
            ++*col;
    }
}

tg_status tg_desc_parse(const char *json, tg_desc *out)
{
    if (!out)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_desc_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!json)
        return tg_fail(TG_ERR_INVALID_ARGUMENT, "tg_desc_parse: json is NULL");
    if (json[strspn(json, " \t\r\n")] == '\0')
        return tg_fail(TG_ERR_DESCRIPTOR, "descriptor: empty (expected a JSON object)");

    /* The syntax is checked first (io/json.h), so cJSON failing on a text
     * that passed can only be out of memory. */
    size_t at;
    const char *why;
    cJSON *root = NULL;
    if (tg_json_check(json, strlen(json), DESC_MAX_NESTING, &at, &why)) {
        root = cJSON_ParseWithOpts(json, NULL, 1);
        if (!root)
            return tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory parsing the descriptor");
    }
    if (!root) {
        int line, col;
        const char *end = json + at;
        line_col(json, end, &line, &col);
        char near[24];
        size_t i = 0;
        for (; end[i] && i < 16; i++)
            near[i] = (unsigned char)end[i] < 0x20 || end[i] == 0x7f ? ' ' : end[i];
        near[i] = '\0';
        return tg_fail(TG_ERR_DESCRIPTOR, "descriptor: malformed JSON at line %d, column %d%s%s%s: %s",
                       line, col, i ? " near '" : " (unexpected end)", near, i ? "'" : "", why);
    }
    set_defaults(out);
    tg_status s = TG_OK;
    out->name = tg_strdup("");
    if (!out->name)
        s = tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory copying the descriptor name");
    if (s == TG_OK)
        s = parse_root(root, out);
    cJSON_Delete(root);
    if (s != TG_OK)
        tg_desc_free(out);
    return s;
}

/* ------------------------------------------------------------ writer */

/* Numbers go in as raw text so that doubles keep the reference's types
 * (10.0 stays a float) and round-trip exactly. */
typedef struct {
    int ok;
} wr;

static cJSON *add(wr *w, cJSON *obj, const char *key, cJSON *item)
{
    if (!item) {
        w->ok = 0;
        return NULL;
    }
    int added = cJSON_IsArray(obj) ? cJSON_AddItemToArray(obj, item)
                                   : cJSON_AddItemToObject(obj, key, item);
    if (!added) {
        cJSON_Delete(item);
        w->ok = 0;
        return NULL;
    }
    return item;
}

static void add_int(wr *w, cJSON *obj, const char *key, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    add(w, obj, key, cJSON_CreateRaw(buf));
}

/* as_float: write integral values as 10.0 (a float in Python). */
static void add_real(wr *w, cJSON *obj, const char *key, double v, int as_float)
{
    char buf[40];
    fmt_double(buf, sizeof buf - 2, v);
    if (as_float && !strpbrk(buf, ".eE"))
        strcat(buf, ".0");
    add(w, obj, key, cJSON_CreateRaw(buf));
}

static void add_str(wr *w, cJSON *obj, const char *key, const char *s)
{
    add(w, obj, key, cJSON_CreateString(s));
}

char *tg_desc_to_json(const tg_desc *d)
{
    if (!d)
        return NULL;
    wr w = {1};
    cJSON *root = cJSON_CreateObject(), *o, *a, *e;
    if (!root)
        goto oom;
    add_str(&w, root, "format", "transgan");
    add_int(&w, root, "format_version", 1);
    add_str(&w, root, "name", d->name ? d->name : "");
    if ((o = add(&w, root, "image", cJSON_CreateObject()))) {
        add_int(&w, o, "size", d->image_size);
        add_int(&w, o, "channels", d->channels);
    }
    add_int(&w, root, "latent_dim", d->latent_dim);
    add_int(&w, root, "num_classes", d->num_classes);
    if (!d->class_names) {
        add(&w, root, "class_names", cJSON_CreateNull());
    } else if ((a = add(&w, root, "class_names", cJSON_CreateArray()))) {
        for (int i = 0; i < d->num_classes; i++)
            add_str(&w, a, NULL, d->class_names[i]);
    }
    if ((o = add(&w, root, "generator", cJSON_CreateObject()))) {
        add_int(&w, o, "bottom_width", d->g.bottom_width);
        add_int(&w, o, "embed_dim", d->g.embed_dim);
        if ((a = add(&w, o, "depths", cJSON_CreateArray())))
            for (int i = 0; i < d->g.nstages && i < TG_MAX_STAGES; i++)
                add_int(&w, a, NULL, d->g.depths[i]);
        add_int(&w, o, "heads", d->g.heads);
        add_int(&w, o, "mlp_ratio", d->g.mlp_ratio);
        add_str(&w, o, "norm", norm_names[d->g.norm == TG_NORM_PIXELNORM]);
        add(&w, o, "relative_position_bias", cJSON_CreateBool(d->g.rel_bias != 0));
        add_str(&w, o, "output", output_names[d->g.output == TG_OUTPUT_TANH]);
    }
    if ((o = add(&w, root, "discriminator", cJSON_CreateObject())) && d->d.kind == TG_DISC_CONV) {
        /* the kind is written only when it is not the default, so a
         * transformer model's descriptor is what it always was */
        add_str(&w, o, "kind", dkind_names[TG_DISC_CONV]);
        if ((a = add(&w, o, "widths", cJSON_CreateArray())))
            for (int i = 0; i < d->d.nlevels && i < TG_MAX_STAGES; i++)
                add_int(&w, a, NULL, d->d.widths[i]);
        if ((a = add(&w, o, "blocks", cJSON_CreateArray())))
            for (int i = 0; i < d->d.nlevels && i < TG_MAX_STAGES; i++)
                add_int(&w, a, NULL, d->d.blocks[i]);
        add_str(&w, o, "down", down_names[d->d.down == TG_DOWN_STRIDE]);
        add(&w, o, "residual", cJSON_CreateBool(d->d.residual != 0));
        add_str(&w, o, "pool", pool_names[d->d.pool == TG_POOL_MEAN]);
    } else if (o) {
        add_int(&w, o, "patch_size", d->d.patch_size);
        add_int(&w, o, "embed_dim", d->d.embed_dim);
        add_int(&w, o, "depth", d->d.depth);
        add_int(&w, o, "heads", d->d.heads);
        add_int(&w, o, "mlp_ratio", d->d.mlp_ratio);
    }
    if ((o = add(&w, root, "training", cJSON_CreateObject()))) {
        int loss = d->t.loss >= 0 && d->t.loss < NELEM(loss_names) ? d->t.loss : 0;
        add_str(&w, o, "loss", loss_names[loss]);
        add_real(&w, o, "gp_weight", d->t.gp_weight, 1);
        add_real(&w, o, "drift_weight", d->t.drift_weight, 1);
        add_str(&w, o, "optimizer", optim_names[d->t.optimizer == TG_OPTIM_SGD]);
        add_real(&w, o, "g_lr", d->t.g_lr, 1);
        add_real(&w, o, "d_lr", d->t.d_lr, 1);
        add_real(&w, o, "beta1", d->t.beta1, 1);
        add_real(&w, o, "beta2", d->t.beta2, 1);
        add_real(&w, o, "adam_eps", d->t.adam_eps, 1);
        add_int(&w, o, "n_critic", d->t.n_critic);
        add_int(&w, o, "g_batch", d->t.g_batch);
        add_int(&w, o, "d_batch", d->t.d_batch);
        add_real(&w, o, "grad_clip", d->t.grad_clip, 1);
        if (d->t.ema == TG_EMA_HALF_LIFE) {
            if ((e = add(&w, o, "ema", cJSON_CreateObject()))) {
                add_real(&w, e, "half_life_kimg", d->t.ema_half_life_kimg, 0); /* 500 is an int there */
                add_real(&w, e, "warmup", d->t.ema_warmup, 1);
            }
        } else if (d->t.ema == TG_EMA_BETA) {
            if ((e = add(&w, o, "ema", cJSON_CreateObject())))
                add_real(&w, e, "beta", d->t.ema_beta, 1);
        } else {
            add(&w, o, "ema", cJSON_CreateNull());
        }
        if ((a = add(&w, o, "diffaug", cJSON_CreateArray())))
            for (int i = 0; i < d->t.ndiffaug && i < 3; i++) {
                int k = d->t.diffaug[i] >= 0 && d->t.diffaug[i] < 3 ? d->t.diffaug[i] : 0;
                add_str(&w, a, NULL, aug_names[k]);
            }
        add_real(&w, o, "diffaug_p", d->t.diffaug_p, 1);
        if (!d->t.ada_on) {
            add(&w, o, "ada", cJSON_CreateNull());
        } else if ((e = add(&w, o, "ada", cJSON_CreateObject()))) {
            add_real(&w, e, "target", d->t.ada_target, 1);
            add_int(&w, e, "interval", d->t.ada_interval);
            add_real(&w, e, "kimg", d->t.ada_kimg, 1);
        }
        add_real(&w, o, "sr_aux_weight", d->t.sr_aux_weight, 1);
        add_real(&w, o, "class_loss_weight", d->t.class_loss_weight, 1);
        if (!d->t.loc_on) {
            add(&w, o, "locality", cJSON_CreateNull());
        } else if ((e = add(&w, o, "locality", cJSON_CreateObject()))) {
            if ((a = add(&w, e, "stages", cJSON_CreateArray())))
                for (int i = 0; i < d->t.loc_nstages && i < TG_MAX_STAGES; i++)
                    add_int(&w, a, NULL, d->t.loc_stages[i]);
            if ((a = add(&w, e, "schedule", cJSON_CreateArray())))
                for (int i = 0; i < d->t.loc_nsched && i < TG_MAX_SCHEDULE; i++) {
                    cJSON *row = add(&w, a, NULL, cJSON_CreateArray());
                    if (row) {
                        add_int(&w, row, NULL, (long long)d->t.loc_until[i]);
                        add_int(&w, row, NULL, d->t.loc_radius[i]);
                    }
                }
        }
        /* written only when given, so a model without a schedule has the
         * descriptor (and checkpoints readable by) libraries before it */
        if (d->t.lrs_n > 0 && (a = add(&w, o, "lr_schedule", cJSON_CreateArray())))
            for (int i = 0; i < d->t.lrs_n && i < TG_MAX_SCHEDULE; i++) {
                cJSON *row = add(&w, a, NULL, cJSON_CreateArray());
                if (row) {
                    add_int(&w, row, NULL, (long long)d->t.lrs_step[i]);
                    add_real(&w, row, NULL, d->t.lrs_factor[i], 1);
                }
            }
        /* likewise R1's keys, only when one is not its default */
        if (d->t.r1_gamma != 0 || d->t.r1_interval != TG_R1_INTERVAL_DEFAULT) {
            add_real(&w, o, "r1_gamma", d->t.r1_gamma, 1);
            add_int(&w, o, "r1_interval", d->t.r1_interval);
        }
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRIu64, d->t.seed);
        add(&w, o, "seed", cJSON_CreateRaw(buf));
        add_str(&w, o, "precision", precision_names[d->t.precision == 1]);
    }
    if (!w.ok)
        goto oom;
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory writing the descriptor");
    return s;
oom:
    cJSON_Delete(root);
    tg_fail(TG_ERR_OUT_OF_MEMORY, "out of memory writing the descriptor");
    return NULL;
}

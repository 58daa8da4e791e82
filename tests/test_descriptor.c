/* The JSON model descriptor: defaults, overrides, every kind of error (each
 * naming its key path or line:column), the writer's round trip and the
 * descriptor files shipped in models/. */
#include <dirent.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/descriptor.h"
#include "testutil.h"

/* Test JSON is written with ' for " (C escapes would drown it). */
static char *q(const char *s)
{
    char *r = strdup(s);
    ck_assert_ptr_nonnull(r);
    for (char *p = r; *p; p++)
        if (*p == '\'')
            *p = '"';
    return r;
}

#define HDR "'format':'transgan','format_version':1"
#define H(x) "{" HDR "," x "}"

static void parse_ok(const char *json_q, tg_desc *d)
{
    char *j = q(json_q);
    tg_status s = tg_desc_parse(j, d);
    ck_assert_msg(s == TG_OK, "%s: status %d: %s", j, (int)s, tg_last_error());
    free(j);
}

/* Parses raw (unconverted) JSON and expects a descriptor error mentioning want. */
static void expect_err_raw(const char *j, const char *want)
{
    tg_desc d;
    memset(&d, 0xab, sizeof d);
    tg_status s = tg_desc_parse(j, &d);
    ck_assert_msg(s == TG_ERR_DESCRIPTOR, "%s: status %d, want TG_ERR_DESCRIPTOR", j, (int)s);
    ck_assert_msg(strstr(tg_last_error(), want) != NULL, "%s: message \"%s\" lacks \"%s\"", j,
                  tg_last_error(), want);
    ck_assert_ptr_null(d.name); /* left zeroed: tg_desc_free is safe */
    ck_assert_int_eq(d.image_size, 0);
    tg_desc_free(&d);
}

static void expect_err(const char *json_q, const char *want)
{
    char *j = q(json_q);
    expect_err_raw(j, want);
    free(j);
}

/* Field-by-field equality: the struct is only ever memset and then assigned,
 * so comparing the bytes (name aside) is exact, doubles bit for bit. */
static int desc_equal(const tg_desc *a, const tg_desc *b)
{
    if (strcmp(a->name, b->name) != 0 || !a->class_names != !b->class_names)
        return 0;
    for (int i = 0; a->class_names && i < a->num_classes && i < b->num_classes; i++)
        if (strcmp(a->class_names[i], b->class_names[i]) != 0)
            return 0;
    tg_desc x = *a, y = *b;
    x.name = y.name = NULL;
    x.class_names = y.class_names = NULL;
    return memcmp(&x, &y, sizeof x) == 0;
}

/* ------------------------------------------------------------ defaults */

static void check_defaults(const tg_desc *d)
{
    ck_assert_str_eq(d->name, "");
    ck_assert_int_eq(d->image_size, 32);
    ck_assert_int_eq(d->channels, 3);
    ck_assert_int_eq(d->latent_dim, 256);
    ck_assert_int_eq(d->g.bottom_width, 8);
    ck_assert_int_eq(d->g.embed_dim, 384);
    ck_assert_int_eq(d->g.nstages, 3);
    ck_assert_int_eq(d->g.depths[0], 5);
    ck_assert_int_eq(d->g.depths[1], 2);
    ck_assert_int_eq(d->g.depths[2], 2);
    ck_assert_int_eq(d->g.heads, 4);
    ck_assert_int_eq(d->g.mlp_ratio, 4);
    ck_assert_int_eq(d->g.norm, TG_NORM_LAYERNORM);
    ck_assert_int_eq(d->g.rel_bias, 0);
    ck_assert_int_eq(d->g.output, TG_OUTPUT_LINEAR);
    ck_assert_int_eq(d->d.patch_size, 4);
    ck_assert_int_eq(d->d.embed_dim, 384);
    ck_assert_int_eq(d->d.depth, 7);
    ck_assert_int_eq(d->d.heads, 4);
    ck_assert_int_eq(d->d.mlp_ratio, 4);
    ck_assert_int_eq(d->t.loss, TG_LOSS_WGAN_GP_EPS);
    ck_assert(d->t.gp_weight == 10.0);
    ck_assert(d->t.drift_weight == 0.001);
    ck_assert(d->t.r1_gamma == 0.0);
    ck_assert_int_eq(d->t.r1_interval, 16);
    ck_assert_int_eq(d->t.optimizer, TG_OPTIM_ADAM);
    ck_assert(d->t.g_lr == 1e-4);
    ck_assert(d->t.d_lr == 1e-4);
    ck_assert(d->t.beta1 == 0.0);
    ck_assert(d->t.beta2 == 0.99);
    ck_assert(d->t.adam_eps == 1e-8);
    ck_assert_int_eq(d->t.n_critic, 4);
    ck_assert_int_eq(d->t.g_batch, 128);
    ck_assert_int_eq(d->t.d_batch, 64);
    ck_assert(d->t.grad_clip == 5.0);
    ck_assert_int_eq(d->t.ema, TG_EMA_HALF_LIFE);
    ck_assert(d->t.ema_half_life_kimg == 500.0);
    ck_assert(d->t.ema_warmup == 0.1);
    ck_assert_int_eq(d->t.ndiffaug, 3);
    ck_assert_int_eq(d->t.diffaug[0], TG_AUG_TRANSLATION);
    ck_assert_int_eq(d->t.diffaug[1], TG_AUG_CUTOUT);
    ck_assert_int_eq(d->t.diffaug[2], TG_AUG_COLOR);
    ck_assert(d->t.sr_aux_weight == 0.0);
    ck_assert_int_eq(d->t.loc_on, 0);
    ck_assert_int_eq(d->t.loc_nstages, 0);
    ck_assert_int_eq(d->t.loc_nsched, 0);
    ck_assert_uint_eq(d->t.seed, 12345);
    ck_assert_int_eq(tg_desc_stage_dim(d, 2), 24);
    ck_assert_int_eq(tg_desc_stage_res(d, 2), 32);
}

START_TEST(defaults)
{
    tg_desc d;
    parse_ok("{" HDR "}", &d);
    check_defaults(&d);
    tg_desc_free(&d);
    ck_assert_ptr_null(d.name);
    /* empty sections, whitespace around, 1.0 for the version */
    parse_ok(" \n\t{'format':'transgan','format_version':1.0,'image':{},'generator':{},"
             "'discriminator':{},'training':{}}\n ",
             &d);
    check_defaults(&d);
    tg_desc_free(&d);
    tg_desc_free(&d); /* twice is harmless */
}
END_TEST

/* ------------------------------------------------------------ overrides */

START_TEST(overrides)
{
    tg_desc d;
    parse_ok(H("'name':'tiny','image':{'size':64,'channels':4},'latent_dim':100,"
               "'generator':{'bottom_width':8,'embed_dim':1024,'depths':[1,2,3,4.0],'heads':2,"
               "'mlp_ratio':2,'norm':'pixelnorm','relative_position_bias':true,'output':'tanh'},"
               "'discriminator':{'patch_size':8,'embed_dim':96,'depth':3,'heads':6,'mlp_ratio':3},"
               "'training':{'loss':'hinge','gp_weight':5,'drift_weight':0,'optimizer':'sgd',"
               "'g_lr':0.0002,'d_lr':3e-4,'beta1':0.5,'beta2':0.999,'adam_eps':1e-6,'n_critic':1,"
               "'g_batch':16,'d_batch':8,'grad_clip':0,'ema':{'beta':0.995},"
               "'diffaug':['color','translation'],'sr_aux_weight':50,"
               "'locality':{'stages':[2,0],'schedule':[[1000,1],[2000,3]]},'seed':0}"),
             &d);
    ck_assert_str_eq(d.name, "tiny");
    ck_assert_int_eq(d.image_size, 64);
    ck_assert_int_eq(d.channels, 4);
    ck_assert_int_eq(d.latent_dim, 100);
    ck_assert_int_eq(d.g.bottom_width, 8);
    ck_assert_int_eq(d.g.embed_dim, 1024);
    ck_assert_int_eq(d.g.nstages, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(d.g.depths[i], i + 1);
    ck_assert_int_eq(d.g.depths[4], 0);
    ck_assert_int_eq(d.g.heads, 2);
    ck_assert_int_eq(d.g.mlp_ratio, 2);
    ck_assert_int_eq(d.g.norm, TG_NORM_PIXELNORM);
    ck_assert_int_eq(d.g.rel_bias, 1);
    ck_assert_int_eq(d.g.output, TG_OUTPUT_TANH);
    ck_assert_int_eq(d.d.patch_size, 8);
    ck_assert_int_eq(d.d.embed_dim, 96);
    ck_assert_int_eq(d.d.depth, 3);
    ck_assert_int_eq(d.d.heads, 6);
    ck_assert_int_eq(d.d.mlp_ratio, 3);
    ck_assert_int_eq(d.t.loss, TG_LOSS_HINGE);
    ck_assert(d.t.gp_weight == 5.0);
    ck_assert(d.t.drift_weight == 0.0);
    ck_assert_int_eq(d.t.optimizer, TG_OPTIM_SGD);
    ck_assert(d.t.g_lr == 0.0002);
    ck_assert(d.t.d_lr == 3e-4);
    ck_assert(d.t.beta1 == 0.5);
    ck_assert(d.t.beta2 == 0.999);
    ck_assert(d.t.adam_eps == 1e-6);
    ck_assert_int_eq(d.t.n_critic, 1);
    ck_assert_int_eq(d.t.g_batch, 16);
    ck_assert_int_eq(d.t.d_batch, 8);
    ck_assert(d.t.grad_clip == 0.0);
    ck_assert_int_eq(d.t.ema, TG_EMA_BETA);
    ck_assert(d.t.ema_beta == 0.995);
    ck_assert_int_eq(d.t.ndiffaug, 2);
    ck_assert_int_eq(d.t.diffaug[0], TG_AUG_COLOR);
    ck_assert_int_eq(d.t.diffaug[1], TG_AUG_TRANSLATION);
    ck_assert(d.t.sr_aux_weight == 50.0);
    ck_assert_int_eq(d.t.loc_on, 1);
    ck_assert_int_eq(d.t.loc_nstages, 2);
    ck_assert_int_eq(d.t.loc_stages[0], 2);
    ck_assert_int_eq(d.t.loc_stages[1], 0);
    ck_assert_int_eq(d.t.loc_nsched, 2);
    ck_assert_int_eq(d.t.loc_until[0], 1000);
    ck_assert_int_eq(d.t.loc_radius[0], 1);
    ck_assert_int_eq(d.t.loc_until[1], 2000);
    ck_assert_int_eq(d.t.loc_radius[1], 3);
    ck_assert_uint_eq(d.t.seed, 0);
    tg_desc_free(&d);
}
END_TEST

START_TEST(ema_forms)
{
    tg_desc d;
    parse_ok(H("'training':{'ema':null}"), &d);
    ck_assert_int_eq(d.t.ema, TG_EMA_NONE);
    tg_desc_free(&d);
    parse_ok(H("'training':{'ema':{'half_life_kimg':10}}"), &d);
    ck_assert_int_eq(d.t.ema, TG_EMA_HALF_LIFE);
    ck_assert(d.t.ema_half_life_kimg == 10.0);
    ck_assert(d.t.ema_warmup == 0.1); /* missing key: its default */
    tg_desc_free(&d);
    parse_ok(H("'training':{'ema':{'warmup':0.05}}"), &d);
    ck_assert_int_eq(d.t.ema, TG_EMA_HALF_LIFE);
    ck_assert(d.t.ema_half_life_kimg == 500.0);
    ck_assert(d.t.ema_warmup == 0.05);
    tg_desc_free(&d);
    parse_ok(H("'training':{'ema':{'half_life_kimg':2.5,'warmup':0}}"), &d);
    ck_assert(d.t.ema_half_life_kimg == 2.5 && d.t.ema_warmup == 0.0);
    tg_desc_free(&d);
    parse_ok(H("'training':{'ema':{'beta':0}}"), &d);
    ck_assert_int_eq(d.t.ema, TG_EMA_BETA);
    ck_assert(d.t.ema_beta == 0.0);
    tg_desc_free(&d);
}
END_TEST

START_TEST(lists_and_numbers)
{
    tg_desc d;
    parse_ok(H("'training':{'diffaug':[]}"), &d);
    ck_assert_int_eq(d.t.ndiffaug, 0);
    tg_desc_free(&d);
    parse_ok(H("'training':{'diffaug':['cutout','color','translation']}"), &d);
    ck_assert_int_eq(d.t.ndiffaug, 3);
    ck_assert_int_eq(d.t.diffaug[0], TG_AUG_CUTOUT);
    ck_assert_int_eq(d.t.diffaug[2], TG_AUG_TRANSLATION);
    tg_desc_free(&d);
    /* locality null; empty lists; integers written as x.0; -0; seed 2^53 */
    parse_ok(H("'training':{'locality':null,'seed':9007199254740992}"), &d);
    ck_assert_int_eq(d.t.loc_on, 0);
    ck_assert_uint_eq(d.t.seed, 9007199254740992ull);
    tg_desc_free(&d);
    parse_ok(H("'training':{'locality':{'stages':[],'schedule':[]}}"), &d);
    ck_assert_int_eq(d.t.loc_on, 1);
    ck_assert_int_eq(d.t.loc_nstages + d.t.loc_nsched, 0);
    tg_desc_free(&d);
    parse_ok(H("'latent_dim':64.0,'generator':{'heads':4e0},'training':{'seed':-0,'n_critic':2.0,"
               "'locality':{'stages':[1.0],'schedule':[[9007199254740992,0]]}}"),
             &d);
    ck_assert_int_eq(d.latent_dim, 64);
    ck_assert_int_eq(d.g.heads, 4);
    ck_assert_uint_eq(d.t.seed, 0);
    ck_assert_int_eq(d.t.n_critic, 2);
    ck_assert_int_eq(d.t.loc_stages[0], 1);
    ck_assert(d.t.loc_until[0] == 9007199254740992ll);
    tg_desc_free(&d);
    /* training.lr_schedule: null, or points with increasing steps */
    parse_ok(H("'training':{'lr_schedule':null}"), &d);
    ck_assert_int_eq(d.t.lrs_n, 0);
    tg_desc_free(&d);
    parse_ok(H("'training':{'lr_schedule':[[0,1],[1000.0,0.5],[9007199254740992,0]]}"), &d);
    ck_assert_int_eq(d.t.lrs_n, 3);
    ck_assert(d.t.lrs_step[0] == 0 && d.t.lrs_step[1] == 1000 &&
              d.t.lrs_step[2] == 9007199254740992ll);
    ck_assert(d.t.lrs_factor[0] == 1.0 && d.t.lrs_factor[1] == 0.5 && d.t.lrs_factor[2] == 0.0);
    tg_desc_free(&d);
    /* a single stage: image.size == bottom_width */
    parse_ok(H("'image':{'size':16},'generator':{'bottom_width':16,'depths':[3]}"), &d);
    ck_assert_int_eq(d.g.nstages, 1);
    tg_desc_free(&d);
    /* the upper bounds themselves are fine */
    parse_ok(H("'image':{'size':1024},'latent_dim':1048576,"
               "'generator':{'bottom_width':8,'embed_dim':65536,'depths':[1,1,1,1,1,1,1,1024],"
               "'heads':4,'mlp_ratio':64},"
               "'discriminator':{'patch_size':1024,'embed_dim':65536,'depth':1024,'heads':65536,"
               "'mlp_ratio':64},'training':{'g_batch':1048576,'d_batch':1048576,"
               "'n_critic':1048576}"),
             &d);
    ck_assert_int_eq(d.g.nstages, 8);
    tg_desc_free(&d);
    /* a name may hold anything a JSON string can */
    ck_assert_int_eq(tg_desc_parse("{\"format\":\"transgan\",\"format_version\":1,"
                                   "\"name\":\"it's \\\"q\\\"\\n\\u00e9\"}",
                                   &d),
                     TG_OK);
    ck_assert_str_eq(d.name, "it's \"q\"\n\xc3\xa9");
    tg_desc_free(&d);
}
END_TEST

START_TEST(null_arguments)
{
    tg_desc d;
    ck_assert_int_eq(tg_desc_parse(NULL, &d), TG_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(d.name);
    ck_assert_int_eq(tg_desc_parse("{}", NULL), TG_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(tg_desc_to_json(NULL));
    tg_desc_free(NULL);
}
END_TEST

/* ------------------------------------------------------------ errors */

static const struct {
    const char *json; /* ' stands for " */
    const char *want; /* substring of the message, taken literally */
} errs[] = {
    /* not a descriptor */
    {"[]", "descriptor: must be a JSON object (got an array)"},
    {"3", "descriptor: must be a JSON object (got 3)"},
    {"{}", "format: required"},
    {"{'format':'transgan'}", "format_version: required"},
    {"{'format_version':1}", "format: required"},
    {"{'format':'TransGAN','format_version':1}", "format: must be \"transgan\" (got \"TransGAN\")"},
    {"{'format':null,'format_version':1}", "format: must be \"transgan\" (got null)"},
    {"{'format':'transgan','format_version':2}", "format_version: must be 1 (got 2)"},
    {"{'format':'transgan','format_version':'1'}", "format_version: must be 1 (got \"1\")"},
    {"{'format':'transgan','format_version':true}", "format_version: must be 1 (got true)"},
    /* unknown and duplicate keys, at every level */
    {H("'foo':1"), "unknown key 'foo'"},
    {H("'Name':'x'"), "unknown key 'Name'"},
    {H("'image':{'colour':3}"), "unknown key 'image.colour'"},
    {H("'generator':{'depth':3}"), "unknown key 'generator.depth'"},
    {H("'discriminator':{'depths':[1]}"), "unknown key 'discriminator.depths'"},
    {H("'training':{'lr':1}"), "unknown key 'training.lr'"},
    {H("'training':{'ema':{'beta':0.9,'gamma':1}}"), "unknown key 'training.ema.gamma'"},
    {H("'training':{'locality':{'stages':[0],'schedule':[],'radius':1}}"),
     "unknown key 'training.locality.radius'"},
    {H("'latent_dim':1,'latent_dim':2"), "duplicate key 'latent_dim'"},
    {H("'generator':{'heads':4,'heads':4}"), "duplicate key 'generator.heads'"},
    {"{'format':'transgan','format':'transgan','format_version':1}", "duplicate key 'format'"},
    /* sections and name */
    {H("'image':3"), "image: must be an object (got 3)"},
    {H("'generator':null"), "generator: must be an object (got null)"},
    {H("'discriminator':'big'"), "discriminator: must be an object (got \"big\")"},
    {H("'training':[]"), "training: must be an object (got an array)"},
    {H("'name':5"), "name: must be a string (got 5)"},
    {H("'name':null"), "name: must be a string (got null)"},
    /* image, latent_dim */
    {H("'image':{'size':'32'}"), "image.size: must be a positive integer (got \"32\")"},
    {H("'image':{'size':0}"), "image.size: must be a positive integer (got 0)"},
    {H("'image':{'size':2048}"), "image.size: must be a positive integer <= 1024 (got 2048)"},
    {H("'image':{'channels':2}"), "image.channels: must be 1, 3 or 4 (got 2)"},
    {H("'image':{'channels':5}"), "image.channels: must be 1, 3 or 4 (got 5)"},
    {H("'image':{'channels':3.5}"), "image.channels: must be 1, 3 or 4 (got 3.5)"},
    {H("'image':{'channels':null}"), "image.channels: must be 1, 3 or 4 (got null)"},
    {H("'latent_dim':4.5"), "latent_dim: must be a positive integer (got 4.5)"},
    {H("'latent_dim':1e999"), "latent_dim: must be a positive integer (got inf)"},
    {H("'latent_dim':-1e999"), "latent_dim: must be a positive integer (got -inf)"},
    {H("'latent_dim':2000000"), "latent_dim: must be a positive integer <= 1048576 (got 2000000)"},
    {H("'latent_dim':false"), "latent_dim: must be a positive integer (got false)"},
    /* generator */
    {H("'generator':{'depths':[5,-2,2]}"), "generator.depths[1]: must be a positive integer (got -2)"},
    {H("'generator':{'depths':[5,'2',2]}"), "generator.depths[1]: must be a positive integer (got \"2\")"},
    {H("'generator':{'depths':[5,2,2000]}"), "generator.depths[2]: must be a positive integer <= 1024"},
    {H("'generator':{'depths':[5,2,[2]]}"), "generator.depths[2]: must be a positive integer (got an array)"},
    {H("'generator':{'depths':[]}"), "generator.depths: must have 1 to 8 entries (got 0)"},
    {H("'generator':{'depths':[1,1,1,1,1,1,1,1,1]}"), "generator.depths: must have 1 to 8 entries (got 9)"},
    {H("'generator':{'depths':3}"), "generator.depths: must be an array of positive integers (got 3)"},
    {H("'generator':{'depths':{}}"), "generator.depths: must be an array"},
    {H("'generator':{'heads':4.5}"), "generator.heads: must be a positive integer (got 4.5)"},
    {H("'generator':{'heads':true}"), "generator.heads: must be a positive integer (got true)"},
    {H("'generator':{'heads':null}"), "generator.heads: must be a positive integer (got null)"},
    {H("'generator':{'heads':100000}"), "generator.heads: must be a positive integer <= 65536"},
    {H("'generator':{'heads':0}"), "generator.heads: must be a positive integer (got 0)"},
    {H("'generator':{'embed_dim':100000}"), "generator.embed_dim: must be a positive integer <= 65536"},
    {H("'generator':{'embed_dim':-384}"), "generator.embed_dim: must be a positive integer (got -384)"},
    {H("'generator':{'bottom_width':0}"), "generator.bottom_width: must be a positive integer (got 0)"},
    {H("'generator':{'mlp_ratio':65}"), "generator.mlp_ratio: must be a positive integer <= 64 (got 65)"},
    {H("'generator':{'mlp_ratio':0}"), "generator.mlp_ratio: must be a positive integer (got 0)"},
    {H("'generator':{'norm':'batchnorm'}"),
     "generator.norm: must be one of \"layernorm\", \"pixelnorm\" (got \"batchnorm\")"},
    {H("'generator':{'norm':null}"), "generator.norm: must be one of"},
    {H("'generator':{'output':1}"), "generator.output: must be one of \"linear\", \"tanh\" (got 1)"},
    {H("'generator':{'relative_position_bias':1}"),
     "generator.relative_position_bias: must be true or false (got 1)"},
    {H("'generator':{'relative_position_bias':'true'}"), "generator.relative_position_bias"},
    /* the shape constraints */
    {H("'generator':{'bottom_width':4}"),
     "image.size: must equal generator.bottom_width * 2^(stages-1) = 4 * 4 = 16 (got 32)"},
    {H("'generator':{'depths':[1,1]}"), "image.size: must equal generator.bottom_width"},
    {H("'image':{'size':1024},'generator':{'bottom_width':1024,'depths':[1,1]}"),
     "image.size: must equal generator.bottom_width * 2^(stages-1) = 1024 * 2 = 2048 (got 1024)"},
    {H("'generator':{'embed_dim':100}"),
     "generator.embed_dim: must be divisible by 4^(stages-1) = 16 (got 100)"},
    {H("'generator':{'heads':5}"), "generator.heads: must divide every stage's dim; stage 0"},
    {H("'generator':{'heads':48}"), "stage 2 has dim 24 (got 48)"},
    {H("'discriminator':{'patch_size':5}"), "discriminator.patch_size: must divide image.size 32 (got 5)"},
    {H("'discriminator':{'patch_size':64}"), "discriminator.patch_size: must divide image.size 32 (got 64)"},
    {H("'discriminator':{'heads':5}"),
     "discriminator.heads: must divide discriminator.embed_dim 384 (got 5)"},
    {H("'discriminator':{'heads':768}"),
     "discriminator.heads: must divide discriminator.embed_dim 384 (got 768)"},
    {H("'discriminator':{'depth':0}"), "discriminator.depth: must be a positive integer (got 0)"},
    {H("'discriminator':{'embed_dim':-1}"), "discriminator.embed_dim: must be a positive integer (got -1)"},
    {H("'discriminator':{'mlp_ratio':1.5}"), "discriminator.mlp_ratio: must be a positive integer (got 1.5)"},
    {H("'discriminator':{'patch_size':'4'}"), "discriminator.patch_size: must be a positive integer"},
    /* training: enums and reals */
    {H("'training':{'loss':'wgan'}"),
     "training.loss: must be one of \"wgan-gp-eps\", \"wgan-gp\", \"hinge\", \"lsgan\" (got \"wgan\")"},
    {H("'training':{'optimizer':'adamw'}"), "training.optimizer: must be one of \"adam\", \"sgd\""},
    {H("'training':{'precision':'fp16'}"), "training.precision: must be one of \"f32\", \"bf16\""},
    {H("'training':{'g_lr':-1e-4}"), "training.g_lr: must be a finite number >= 0 (got -0.0001)"},
    {H("'training':{'d_lr':'1e-4'}"), "training.d_lr: must be a finite number >= 0 (got \"1e-4\")"},
    {H("'training':{'gp_weight':1e999}"), "training.gp_weight: must be a finite number >= 0 (got inf)"},
    {H("'training':{'drift_weight':null}"), "training.drift_weight: must be a finite number >= 0 (got null)"},
    {H("'training':{'beta1':1}"), "training.beta1: must be a number in [0, 1) (got 1)"},
    {H("'training':{'beta1':true}"), "training.beta1: must be a number in [0, 1) (got true)"},
    {H("'training':{'beta2':-0.1}"), "training.beta2: must be a number in [0, 1) (got -0.1)"},
    {H("'training':{'adam_eps':0}"), "training.adam_eps: must be a finite number > 0 (got 0)"},
    {H("'training':{'grad_clip':-1}"), "training.grad_clip: must be a finite number >= 0 (got -1)"},
    {H("'training':{'sr_aux_weight':-1}"), "training.sr_aux_weight: must be a finite number >= 0"},
    {H("'training':{'loss':'hinge','r1_gamma':-1}"), "training.r1_gamma: must be a finite number >= 0 (got -1)"},
    {H("'training':{'loss':'hinge','r1_interval':0}"), "training.r1_interval: must be"},
    {H("'training':{'r1_gamma':0.1}"),
     "training.r1_gamma: R1 takes the place of the wgan-gp losses' gradient penalty; > 0 needs "
     "training.loss \"hinge\" or \"lsgan\" (got \"wgan-gp-eps\")"},
    {H("'training':{'loss':'wgan-gp','r1_gamma':1e-9}"), "(got \"wgan-gp\")"},
    {H("'num_classes':2,'training':{'class_loss_weight':-0.5}"),
     "training.class_loss_weight: must be a finite number >= 0 (got -0.5)"},
    {H("'training':{'class_loss_weight':1}"),
     "training.class_loss_weight: > 0 needs a class-conditional model (num_classes > 0)"},
    {H("'training':{'diffaug_p':1.5}"), "training.diffaug_p: must be a number in [0, 1] (got 1.5)"},
    {H("'training':{'ada':0.6}"), "training.ada: must be null or {"},
    {H("'training':{'ada':{'target':2}}"), "training.ada.target: must be a number in [0, 1] (got 2)"},
    {H("'training':{'ada':{'kimg':0}}"), "training.ada.kimg: must be a finite number > 0 (got 0)"},
    {H("'training':{'ada':{'interval':0}}"), "training.ada.interval: must be a positive integer (got 0)"},
    {H("'training':{'ada':{'speed':1}}"), "training.ada.speed"},
    {H("'training':{'ada':{},'diffaug':[]}"), "training.ada: adapts the DiffAugment probability"},
    {H("'image':{'size':8},'training':{'sr_aux_weight':50}"), "image.size: must equal"},
    {H("'image':{'size':8},'generator':{'depths':[2]},'training':{'sr_aux_weight':50}"),
     "training.sr_aux_weight: > 0 needs at least 2 generator stages"},
    /* training: integers */
    {H("'training':{'n_critic':0}"), "training.n_critic: must be a positive integer (got 0)"},
    {H("'training':{'n_critic':2.5}"), "training.n_critic: must be a positive integer (got 2.5)"},
    {H("'training':{'g_batch':1.5}"), "training.g_batch: must be a positive integer (got 1.5)"},
    {H("'training':{'d_batch':2000000}"), "training.d_batch: must be a positive integer <= 1048576"},
    {H("'training':{'d_batch':'64'}"), "training.d_batch: must be a positive integer (got \"64\")"},
    {H("'training':{'seed':-1}"), "training.seed: must be a non-negative integer (got -1)"},
    {H("'training':{'seed':1.5}"), "training.seed: must be a non-negative integer (got 1.5)"},
    {H("'training':{'seed':1e17}"),
     "training.seed: must be a non-negative integer <= 9007199254740992 (got 1e+17)"},
    {H("'training':{'seed':'7'}"), "training.seed: must be a non-negative integer (got \"7\")"},
    {H("'training':{'seed':null}"), "training.seed: must be a non-negative integer (got null)"},
    /* training.ema */
    {H("'training':{'ema':0.99}"), "training.ema: must be null, {\"beta\": b} or"},
    {H("'training':{'ema':true}"), "training.ema: must be null"},
    {H("'training':{'ema':{'beta':1}}"), "training.ema.beta: must be a number in [0, 1) (got 1)"},
    {H("'training':{'ema':{'beta':-0.1}}"), "training.ema.beta: must be a number in [0, 1) (got -0.1)"},
    {H("'training':{'ema':{'beta':null}}"), "training.ema.beta: must be a number in [0, 1) (got null)"},
    {H("'training':{'ema':{'beta':0.9,'warmup':0.1}}"), "training.ema: give either \"beta\""},
    {H("'training':{'ema':{'half_life_kimg':10,'beta':0.9}}"), "training.ema: give either"},
    {H("'training':{'ema':{}}"), "training.ema: empty object"},
    {H("'training':{'ema':{'half_life_kimg':-1}}"),
     "training.ema.half_life_kimg: must be a finite number >= 0 (got -1)"},
    {H("'training':{'ema':{'warmup':'x'}}"), "training.ema.warmup: must be a finite number >= 0 (got \"x\")"},
    /* training.diffaug */
    {H("'training':{'diffaug':'color'}"), "training.diffaug: must be an array"},
    {H("'training':{'diffaug':null}"), "training.diffaug: must be an array"},
    {H("'training':{'diffaug':['flip']}"),
     "training.diffaug[0]: must be one of \"translation\", \"cutout\", \"color\" (got \"flip\")"},
    {H("'training':{'diffaug':['color','Color']}"), "training.diffaug[1]: must be one of"},
    {H("'training':{'diffaug':['color','color']}"), "training.diffaug[1]: \"color\" appears twice"},
    {H("'training':{'diffaug':['cutout','color','translation','cutout']}"),
     "training.diffaug[3]: \"cutout\" appears twice"},
    {H("'training':{'diffaug':[null]}"), "training.diffaug[0]: must be one of"},
    /* training.locality */
    {H("'training':{'locality':1}"), "training.locality: must be null or"},
    {H("'training':{'locality':[]}"), "training.locality: must be null or"},
    {H("'training':{'locality':{}}"), "training.locality.stages: required"},
    {H("'training':{'locality':{'stages':[0]}}"), "training.locality.schedule: required"},
    {H("'training':{'locality':{'stages':3,'schedule':[]}}"),
     "training.locality.stages: must be an array of generator stage indices (got 3)"},
    {H("'training':{'locality':{'stages':[3],'schedule':[]}}"),
     "training.locality.stages[0]: must be a generator stage index in [0, 2] (got 3)"},
    {H("'training':{'locality':{'stages':[0,-1],'schedule':[]}}"),
     "training.locality.stages[1]: must be a generator stage index in [0, 2] (got -1)"},
    {H("'training':{'locality':{'stages':[0.5],'schedule':[]}}"), "training.locality.stages[0]"},
    {H("'training':{'locality':{'stages':['0'],'schedule':[]}}"), "training.locality.stages[0]"},
    {H("'training':{'locality':{'stages':[1,0,1],'schedule':[]}}"),
     "training.locality.stages[2]: stage 1 appears twice"},
    {H("'training':{'locality':{'stages':[0],'schedule':{}}}"), "training.locality.schedule: must be an array"},
    {H("'training':{'locality':{'stages':[0],'schedule':[5]}}"),
     "training.locality.schedule[0]: must be an [until_g_step, radius] pair (got 5)"},
    {H("'training':{'locality':{'stages':[0],'schedule':[[1]]}}"),
     "training.locality.schedule[0]: must be an [until_g_step, radius] pair (got an array)"},
    {H("'training':{'locality':{'stages':[0],'schedule':[[1,2,3]]}}"), "training.locality.schedule[0]: must be"},
    {H("'training':{'locality':{'stages':[0],'schedule':[[100,1],[200,-1]]}}"),
     "training.locality.schedule[1][1]: must be a non-negative integer (got -1)"},
    {H("'training':{'locality':{'stages':[0],'schedule':[[-5,1]]}}"),
     "training.locality.schedule[0][0]: must be a non-negative integer (got -5)"},
    {H("'training':{'locality':{'stages':[0],'schedule':[[1.5,1]]}}"),
     "training.locality.schedule[0][0]: must be a non-negative integer (got 1.5)"},
    {H("'training':{'locality':{'stages':[0],'schedule':[[1,null]]}}"),
     "training.locality.schedule[0][1]: must be a non-negative integer (got null)"},
    {H("'training':{'locality':{'stages':[0],'schedule':[[1,2000000]]}}"),
     "training.locality.schedule[0][1]: must be a non-negative integer <= 1048576"},
    /* training.lr_schedule */
    {H("'training':{'lr_schedule':1}"),
     "training.lr_schedule: must be null or a non-empty array of [d_step, factor] points (got 1)"},
    {H("'training':{'lr_schedule':[]}"), "training.lr_schedule: must be null or a non-empty array"},
    {H("'training':{'lr_schedule':{}}"), "training.lr_schedule: must be null or"},
    {H("'training':{'lr_schedule':[5]}"),
     "training.lr_schedule[0]: must be a [d_step, factor] point (got 5)"},
    {H("'training':{'lr_schedule':[[0,1],[1]]}"), "training.lr_schedule[1]: must be a [d_step, factor] point"},
    {H("'training':{'lr_schedule':[[0,1,2]]}"), "training.lr_schedule[0]: must be a [d_step, factor] point"},
    {H("'training':{'lr_schedule':[[-1,1]]}"),
     "training.lr_schedule[0][0]: must be a non-negative integer (got -1)"},
    {H("'training':{'lr_schedule':[[1.5,1]]}"),
     "training.lr_schedule[0][0]: must be a non-negative integer (got 1.5)"},
    {H("'training':{'lr_schedule':[['0',1]]}"), "training.lr_schedule[0][0]: must be a non-negative integer"},
    {H("'training':{'lr_schedule':[[0,-0.5]]}"),
     "training.lr_schedule[0][1]: must be a finite number >= 0 (got -0.5)"},
    {H("'training':{'lr_schedule':[[0,null]]}"), "training.lr_schedule[0][1]: must be a finite number >= 0"},
    {H("'training':{'lr_schedule':[[0,1],[100,0.5],[100,0.1]]}"),
     "training.lr_schedule[2][0]: steps must increase (100 after 100)"},
    {H("'training':{'lr_schedule':[[50,1],[10,0.5]]}"),
     "training.lr_schedule[1][0]: steps must increase (10 after 50)"},
    {H("'training':{'lr_schedule':[[0,1],[1,1],[2,1],[3,1],[4,1],[5,1],[6,1],[7,1],[8,1],[9,1],"
       "[10,1],[11,1],[12,1],[13,1],[14,1],[15,1],[16,1],[17,1],[18,1],[19,1],[20,1],[21,1],"
       "[22,1],[23,1],[24,1],[25,1],[26,1],[27,1],[28,1],[29,1],[30,1],[31,1],[32,1]]}"),
     "training.lr_schedule: at most 32 points (got 33)"},
    /* discriminator.kind "conv" */
    {H("'discriminator':{'kind':'cnn'}"),
     "discriminator.kind: must be one of \"transformer\", \"conv\" (got \"cnn\")"},
    {H("'discriminator':{'kind':'conv','patch_size':4}"),
     "discriminator.patch_size: only with discriminator.kind \"transformer\" (this one is \"conv\")"},
    {H("'discriminator':{'widths':[64]}"),
     "discriminator.widths: only with discriminator.kind \"conv\" (this one is \"transformer\")"},
    {H("'discriminator':{'kind':'transformer','pool':'sum'}"),
     "discriminator.pool: only with discriminator.kind \"conv\""},
    {H("'discriminator':{'kind':'conv','batchnorm':true}"), "unknown key 'discriminator.batchnorm'"},
    {H("'discriminator':{'kind':'conv','widths':[]}"), "discriminator.widths: must have 1 to 8 entries (got 0)"},
    {H("'discriminator':{'kind':'conv','widths':64}"),
     "discriminator.widths: must be an array of positive integers (got 64)"},
    {H("'discriminator':{'kind':'conv','widths':[64,0,1]}"),
     "discriminator.widths[1]: must be a positive integer (got 0)"},
    {H("'discriminator':{'kind':'conv','widths':[64,5000,1]}"),
     "discriminator.widths[1]: must be a positive integer <= 4096 (got 5000)"},
    {H("'discriminator':{'kind':'conv','widths':[64,64]}"),
     "discriminator.blocks: must have one entry per level, as many as discriminator.widths (2; got 3)"},
    {H("'discriminator':{'kind':'conv','blocks':[1,1.5,1]}"),
     "discriminator.blocks[1]: must be a positive integer (got 1.5)"},
    {H("'discriminator':{'kind':'conv','blocks':[1,1,65]}"),
     "discriminator.blocks[2]: must be a positive integer <= 64 (got 65)"},
    {H("'discriminator':{'kind':'conv','down':'maxpool'}"),
     "discriminator.down: must be one of \"avgpool\", \"stride\" (got \"maxpool\")"},
    {H("'discriminator':{'kind':'conv','residual':1}"),
     "discriminator.residual: must be true or false (got 1)"},
    {H("'discriminator':{'kind':'conv','pool':'max'}"),
     "discriminator.pool: must be one of \"sum\", \"mean\" (got \"max\")"},
    {H("'image':{'size':12},'generator':{'bottom_width':3},"
       "'discriminator':{'kind':'conv','widths':[8,8,8,8],'blocks':[1,1,1,1]}"),
     "discriminator.widths: 4 levels halve the image 3 times, so image.size must be divisible by 8 "
     "(got 12)"},
    /* malformed JSON: line and column of the offending byte */
    {"", "descriptor: empty"},
    {" \n\t\r\n ", "descriptor: empty"},
    {"{'format':'transgan','format_version':1", "malformed JSON at line 1, column"},
    {"{'format':'transgan','format_version':1} x", "malformed JSON at line 1, column 42 near 'x'"},
    {"{\n  'format': 'transgan',\n  'format_version': ,\n}", "malformed JSON at line 3, column 21"},
    {"{\n'a':1,\n'b':[1,2,,3]}", "malformed JSON at line 3, column 10"},
    {H("'latent_dim':NaN"), "malformed JSON at line 1, column 54 near 'NaN}'"},
    {"{'format':'transgan','format_version':1,'name':'\\x'}", "malformed JSON at line 1"},
    {"{'format':'transgan','format_version':1}{}", "malformed JSON at line 1, column 41"},
};
#define NERRS ((int)(sizeof errs / sizeof errs[0]))

START_TEST(errors)
{
    expect_err(errs[_i].json, errs[_i].want);
}
END_TEST

START_TEST(schedule_too_long)
{
    char buf[2048] = "{" HDR ",'training':{'locality':{'stages':[0],'schedule':[";
    for (int i = 0; i <= TG_MAX_SCHEDULE; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s[%d,1]", i ? "," : "", i);
    }
    strcat(buf, "]}}}");
    expect_err(buf, "training.locality.schedule: at most 32 rows (got 33)");
    /* exactly TG_MAX_SCHEDULE rows is fine */
    char *cut = strstr(buf, ",[32,1]");
    ck_assert_ptr_nonnull(cut);
    strcpy(cut, "]}}}");
    tg_desc d;
    parse_ok(buf, &d);
    ck_assert_int_eq(d.t.loc_nsched, TG_MAX_SCHEDULE);
    ck_assert_int_eq(d.t.loc_until[31], 31);
    tg_desc_free(&d);
}
END_TEST

/* A message never outgrows its buffer, and a failure clears nothing it should not. */
START_TEST(long_key)
{
    char buf[4096] = "{" HDR ",'training':{'";
    size_t l = strlen(buf);
    memset(buf + l, 'k', 1000);
    strcpy(buf + l + 1000, "':1}}");
    expect_err(buf, "unknown key 'training.kkkk");
    /* control bytes in a value do not reach the message */
    expect_err_raw("{\"format\":\"trans\\u0001gan\",\"format_version\":1}", "(got \"trans?gan\")");
}
END_TEST

/* ------------------------------------------------------------ round trip */

static const char *const rt_cases[] = {
    "{" HDR "}",
    H("'name':'tiny','image':{'size':64,'channels':4},'latent_dim':100,"
      "'generator':{'bottom_width':8,'embed_dim':1024,'depths':[1,2,3,4],'heads':2,"
      "'mlp_ratio':2,'norm':'pixelnorm','relative_position_bias':true,'output':'tanh'},"
      "'discriminator':{'patch_size':8,'embed_dim':96,'depth':3,'heads':6,'mlp_ratio':3},"
      "'training':{'loss':'lsgan','gp_weight':0.1,'drift_weight':0.30000000000000004,"
      "'optimizer':'sgd','g_lr':0.00020000000000000001,'d_lr':3e-4,'beta1':0.5,"
      "'beta2':0.99999999999999989,'adam_eps':5e-324,'n_critic':1,'g_batch':16,'d_batch':8,"
      "'grad_clip':1.7976931348623157e308,'ema':{'beta':0.995},'diffaug':['color','translation'],"
      "'sr_aux_weight':50,'locality':{'stages':[2,0],'schedule':[[1000,1],[9007199254740992,3]]},"
      "'seed':9007199254740992}"),
    H("'training':{'ema':null,'diffaug':[],'locality':{'stages':[],'schedule':[]},'loss':'wgan-gp'}"),
    H("'training':{'ema':{'half_life_kimg':0.333333333333333314829616256247,'warmup':1e-300},"
      "'loss':'hinge','gp_weight':-0.0}"),
    H("'image':{'size':16},'generator':{'bottom_width':16,'depths':[3]}"),
    H("'discriminator':{'kind':'conv'}"),
    H("'image':{'size':6,'channels':1},'generator':{'bottom_width':3,'depths':[1,1],'embed_dim':16},"
      "'discriminator':{'kind':'conv','widths':[3,5],'blocks':[2,1],'down':'stride',"
      "'residual':false,'pool':'mean'}"),
    H("'num_classes':3,'class_names':['t-shirt','bag','ankle-\\u00e9-boot']"),
    H("'num_classes':65536"),
    H("'training':{'precision':'bf16'}"),
    H("'num_classes':4,'training':{'class_loss_weight':0.75}"),
    H("'num_classes':4,'training':{'class_loss_weight':0}"),
    H("'training':{'lr_schedule':[[0,1],[6000,1],[25000,0.125],[9007199254740992,0.1]]}"),
    H("'training':{'loss':'hinge','r1_gamma':0.1,'r1_interval':8}"),
    H("'training':{'loss':'lsgan','r1_gamma':1e300,'r1_interval':1}"),
    H("'training':{'r1_interval':5}"), /* off, but kept */
    H("'training':{'lr_schedule':[[3,0.30000000000000004]],'locality':{'stages':[1],'schedule':[[5,1]]}}"),
};

START_TEST(round_trip)
{
    tg_desc a, b;
    parse_ok(rt_cases[_i], &a);
    char *s = tg_desc_to_json(&a);
    ck_assert_ptr_nonnull(s);
    tg_status st = tg_desc_parse(s, &b);
    ck_assert_msg(st == TG_OK, "%s: %s", s, tg_last_error());
    ck_assert_msg(desc_equal(&a, &b), "round trip changed the descriptor: %s", s);
    char *s2 = tg_desc_to_json(&b);
    ck_assert_ptr_nonnull(s2);
    ck_assert_str_eq(s, s2);
    ck_assert_ptr_null(strchr(s, '\n')); /* compact */
    ck_assert_ptr_null(strchr(s, ' '));
    free(s), free(s2);
    tg_desc_free(&a), tg_desc_free(&b);
}
END_TEST

static void check_keys(const cJSON *o, const char *const *keys, int n)
{
    ck_assert(cJSON_IsObject(o));
    ck_assert_int_eq(cJSON_GetArraySize(o), n);
    int i = 0;
    for (const cJSON *c = o->child; c; c = c->next, i++)
        ck_assert_str_eq(c->string, keys[i]); /* every key, in the reference's order */
}

/* The writer gives every key, with the reference DEFAULTS' names and types. */
START_TEST(writer_shape)
{
    static const char *const root_k[] = {"format", "format_version", "name", "image", "latent_dim",
                                         "num_classes", "class_names", "generator",
                                         "discriminator", "training"};
    static const char *const image_k[] = {"size", "channels"};
    static const char *const gen_k[] = {"bottom_width", "embed_dim", "depths", "heads", "mlp_ratio",
                                        "norm", "relative_position_bias", "output"};
    static const char *const disc_k[] = {"patch_size", "embed_dim", "depth", "heads", "mlp_ratio"};
    static const char *const train_k[] = {
        "loss", "gp_weight", "drift_weight", "optimizer", "g_lr", "d_lr", "beta1", "beta2",
        "adam_eps", "n_critic", "g_batch", "d_batch", "grad_clip", "ema", "diffaug",
        "diffaug_p", "ada", "sr_aux_weight", "class_loss_weight", "locality", "seed",
        "precision"};
    tg_desc d;
    parse_ok("{" HDR "}", &d);
    char *s = tg_desc_to_json(&d);
    ck_assert_ptr_nonnull(s);
    cJSON *r = cJSON_Parse(s);
    ck_assert_ptr_nonnull(r);
    check_keys(r, root_k, 10);
    ck_assert_int_eq(cJSON_GetObjectItem(r, "num_classes")->valueint, 0);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "class_names")));
    check_keys(cJSON_GetObjectItem(r, "image"), image_k, 2);
    check_keys(cJSON_GetObjectItem(r, "generator"), gen_k, 8);
    check_keys(cJSON_GetObjectItem(r, "discriminator"), disc_k, 5);
    cJSON *t = cJSON_GetObjectItem(r, "training");
    check_keys(t, train_k, 22);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(t, "locality")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "generator"), "relative_position_bias")));
    cJSON_Delete(r);
    /* floats stay floats (10.0, not 10); integers stay integers */
    const char *want[] = {"\"format\":\"transgan\",\"format_version\":1,\"name\":\"\"",
                          "\"image\":{\"size\":32,\"channels\":3}",
                          "\"depths\":[5,2,2]",
                          "\"gp_weight\":10.0,\"drift_weight\":0.001",
                          "\"beta1\":0.0,\"beta2\":0.99,\"adam_eps\":1e-08",
                          "\"grad_clip\":5.0",
                          "\"ema\":{\"half_life_kimg\":500,\"warmup\":0.1}",
                          "\"diffaug\":[\"translation\",\"cutout\",\"color\"],\"diffaug_p\":1.0,\"ada\":null",
                          "\"sr_aux_weight\":0.0,\"class_loss_weight\":0.0,\"locality\":null,"
                          "\"seed\":12345,"
                          "\"precision\":\"f32\"}}"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(s, want[i]), "%s lacks %s", s, want[i]);
    free(s);
    tg_desc_free(&d);

    parse_ok(H("'name':'a\\'b','training':{'ema':{'beta':0.5},'locality':{'stages':[1],"
               "'schedule':[[10,2]]}}"),
             &d);
    s = tg_desc_to_json(&d);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "\"name\":\"a\\\"b\""), "%s", s);
    ck_assert_msg(strstr(s, "\"ema\":{\"beta\":0.5}"), "%s", s);
    ck_assert_msg(strstr(s, "\"locality\":{\"stages\":[1],\"schedule\":[[10,2]]}"), "%s", s);
    ck_assert_msg(!strstr(s, "lr_schedule"), "%s", s); /* written only when given */
    free(s);
    tg_desc_free(&d);
    parse_ok(H("'training':{'lr_schedule':[[0,1],[100,0.25]]}"), &d);
    s = tg_desc_to_json(&d);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "\"locality\":null,\"lr_schedule\":[[0,1.0],[100,0.25]],\"seed\":12345"),
                  "%s", s);
    free(s);
    tg_desc_free(&d);
}
END_TEST

/* num_classes and class_names (docs/SPECIFICATION.md "Class conditioning"). */
START_TEST(class_keys)
{
    tg_desc d;
    parse_ok("{" HDR "}", &d);
    ck_assert_int_eq(d.num_classes, 0);
    ck_assert_ptr_null(d.class_names);
    tg_desc_free(&d);
    parse_ok(H("'num_classes':2,'class_names':['boot','bag']"), &d);
    ck_assert_int_eq(d.num_classes, 2);
    ck_assert_str_eq(d.class_names[0], "boot");
    ck_assert_str_eq(d.class_names[1], "bag");
    tg_desc_free(&d);
    parse_ok(H("'num_classes':4,'class_names':null"), &d); /* names are optional */
    ck_assert_int_eq(d.num_classes, 4);
    ck_assert_ptr_null(d.class_names);
    char *s = tg_desc_to_json(&d);
    ck_assert_msg(strstr(s, "\"num_classes\":4,\"class_names\":null"), "%s", s);
    free(s);
    tg_desc_free(&d);
    parse_ok(H("'num_classes':0,'class_names':[]"), &d);
    ck_assert_ptr_null(d.class_names);
    tg_desc_free(&d);
    expect_err(H("'num_classes':-1"), "num_classes: must be a non-negative integer");
    expect_err(H("'num_classes':65537"), "num_classes");
    expect_err(H("'num_classes':1.5"), "num_classes");
    expect_err(H("'class_names':['a']"), "class_names: must have num_classes = 0 names (got 1)");
    expect_err(H("'num_classes':2,'class_names':['a']"), "class_names: must have num_classes = 2");
    expect_err(H("'num_classes':2,'class_names':'ab'"), "class_names: must be null or an array");
    expect_err(H("'num_classes':2,'class_names':['a','a']"),
               "class_names[1]: must differ from every other class name");
    expect_err(H("'num_classes':2,'class_names':['a','']"), "class_names[1]: must be a non-empty");
    expect_err(H("'num_classes':2,'class_names':['a',3]"), "class_names[1]: must be a non-empty");
    /* the conv D takes classes too (its projection head); bad names still fail */
    parse_ok(H("'num_classes':2,'discriminator':{'kind':'conv'}"), &d);
    ck_assert_int_eq(d.num_classes, 2);
    ck_assert_int_eq(d.d.kind, TG_DISC_CONV);
    tg_desc_free(&d);
    expect_err(H("'num_classes':2,'class_names':['a'],'discriminator':{'kind':'conv'}"),
               "class_names: must have num_classes = 2");
}
END_TEST

/* training.class_loss_weight: parsed and written back, after sr_aux_weight
 * like every key, 0 included */
START_TEST(class_loss_key)
{
    tg_desc d;
    parse_ok(H("'num_classes':3,'training':{'class_loss_weight':0.5}"), &d);
    ck_assert(d.t.class_loss_weight == 0.5);
    char *s = tg_desc_to_json(&d);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "\"sr_aux_weight\":0.0,\"class_loss_weight\":0.5,\"locality\""),
                  "%s", s);
    free(s);
    tg_desc_free(&d);
    parse_ok(H("'num_classes':3,'training':{'class_loss_weight':0}"), &d);
    ck_assert(d.t.class_loss_weight == 0);
    s = tg_desc_to_json(&d);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "\"sr_aux_weight\":0.0,\"class_loss_weight\":0.0,\"locality\""),
                  "%s", s);
    free(s);
    tg_desc_free(&d);
}
END_TEST

/* The writer does not depend on LC_NUMERIC (JSON has only '.'). */
/* The conv D's section: its own keys only, in this order; its defaults
 * (AutoGAN's discriminator); a transformer descriptor says nothing of kind. */
START_TEST(conv_kind)
{
    static const char *const disc_k[] = {"kind", "widths", "blocks", "down", "residual", "pool"};
    tg_desc d;
    parse_ok(H("'discriminator':{'kind':'conv'}"), &d);
    ck_assert_int_eq(d.d.kind, TG_DISC_CONV);
    ck_assert_int_eq(d.d.nlevels, 3);
    ck_assert_int_eq(d.d.widths[0], 128);
    ck_assert_int_eq(d.d.widths[2], 128);
    ck_assert_int_eq(d.d.blocks[0], 1);
    ck_assert_int_eq(d.d.blocks[1], 1);
    ck_assert_int_eq(d.d.blocks[2], 2);
    ck_assert_int_eq(d.d.down, TG_DOWN_AVGPOOL);
    ck_assert_int_eq(d.d.residual, 1);
    ck_assert_int_eq(d.d.pool, TG_POOL_SUM);
    char *s = tg_desc_to_json(&d);
    ck_assert_ptr_nonnull(s);
    cJSON *r = cJSON_Parse(s);
    ck_assert_ptr_nonnull(r);
    const cJSON *o = cJSON_GetObjectItem(r, "discriminator");
    check_keys(o, disc_k, 6);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "kind")->valuestring, "conv");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "residual")));
    cJSON_Delete(r);
    free(s);
    tg_desc_free(&d);
    /* a given widths replaces the default list whole */
    parse_ok(H("'discriminator':{'kind':'conv','widths':[7,9],'blocks':[2,3]}"), &d);
    ck_assert_int_eq(d.d.nlevels, 2);
    ck_assert_int_eq(d.d.widths[1], 9);
    ck_assert_int_eq(d.d.widths[2], 0);
    ck_assert_int_eq(d.d.blocks[1], 3);
    ck_assert_int_eq(d.d.blocks[2], 0);
    tg_desc_free(&d);
    parse_ok("{" HDR "}", &d);
    ck_assert_int_eq(d.d.kind, TG_DISC_TRANSFORMER);
    s = tg_desc_to_json(&d);
    ck_assert_ptr_null(strstr(s, "\"kind\""));
    free(s);
    tg_desc_free(&d);
}
END_TEST

START_TEST(writer_locale)
{
    const char *locs[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    const char *got = NULL;
    for (size_t i = 0; i < 4 && !got; i++)
        got = setlocale(LC_NUMERIC, locs[i]);
    if (!got)
        return; /* no comma locale installed: nothing to check */
    tg_desc a, b;
    parse_ok(H("'training':{'g_lr':0.25}"), &a);
    char *s = tg_desc_to_json(&a);
    ck_assert_ptr_nonnull(strstr(s, "\"g_lr\":0.25"));
    ck_assert_int_eq(tg_desc_parse(s, &b), TG_OK);
    ck_assert(desc_equal(&a, &b));
    free(s);
    tg_desc_free(&a), tg_desc_free(&b);
    setlocale(LC_NUMERIC, "C");
}
END_TEST

/* ------------------------------------------------------------ models/ */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void load_model(const char *file, tg_desc *d)
{
    char path[256];
    snprintf(path, sizeof path, "models/%s", file);
    char *j = slurp(path);
    tg_status s = tg_desc_parse(j, d);
    ck_assert_msg(s == TG_OK, "%s: %s", path, tg_last_error());
    free(j);
}

START_TEST(models_parse)
{
    DIR *dir = opendir("models");
    ck_assert_msg(dir != NULL, "models/ not found (run from the repository root)");
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        tg_desc d, d2;
        load_model(e->d_name, &d);
        ck_assert_msg(d.name[0] != '\0', "%s has no name", e->d_name);
        char *s = tg_desc_to_json(&d);
        ck_assert_int_eq(tg_desc_parse(s, &d2), TG_OK);
        ck_assert(desc_equal(&d, &d2));
        free(s);
        tg_desc_free(&d), tg_desc_free(&d2);
        n++;
    }
    closedir(dir);
    ck_assert_int_ge(n, 6);
}
END_TEST

START_TEST(models_sizes)
{
    static const struct { const char *file; int dim, depth1; } paper[] = {
        {"transgan-s.json", 384, 2}, {"transgan-m.json", 512, 2},
        {"transgan-l.json", 768, 2}, {"transgan-xl.json", 1024, 4}};
    tg_desc d;
    for (int i = 0; i < 4; i++) {
        load_model(paper[i].file, &d);
        ck_assert_int_eq(d.image_size, 32);
        ck_assert_int_eq(d.channels, 3);
        ck_assert_int_eq(d.g.embed_dim, paper[i].dim);
        ck_assert_int_eq(d.g.nstages, 3);
        ck_assert_int_eq(d.g.depths[0], 5);
        ck_assert_int_eq(d.g.depths[1], paper[i].depth1);
        ck_assert_int_eq(d.g.depths[2], 2);
        ck_assert_int_eq(d.g.heads, 4);
        ck_assert_int_eq(d.g.bottom_width, 8);
        ck_assert_int_eq(d.d.patch_size, 4);
        ck_assert_int_eq(d.d.embed_dim, 384);
        ck_assert_int_eq(d.d.depth, 7);
        ck_assert_int_eq(d.d.heads, 4);
        tg_desc_free(&d);
    }
    load_model("fmnist-small.json", &d);
    ck_assert_int_eq(d.channels, 1);
    ck_assert_int_eq(d.image_size, 32);
    ck_assert_int_le(d.g.embed_dim, 256);
    ck_assert_int_le(d.d.embed_dim, 128);
    tg_desc_free(&d);
    load_model("emoji-32.json", &d);
    ck_assert_int_eq(d.channels, 4);
    ck_assert_int_eq(d.image_size, 32);
    tg_desc_free(&d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("descriptor");
    TCase *tc = tcase_create("descriptor");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, overrides);
    tcase_add_test(tc, ema_forms);
    tcase_add_test(tc, lists_and_numbers);
    tcase_add_test(tc, null_arguments);
    tcase_add_loop_test(tc, errors, 0, NERRS);
    tcase_add_test(tc, schedule_too_long);
    tcase_add_test(tc, long_key);
    tcase_add_loop_test(tc, round_trip, 0, (int)(sizeof rt_cases / sizeof rt_cases[0]));
    tcase_add_test(tc, writer_shape);
    tcase_add_test(tc, writer_locale);
    tcase_add_test(tc, conv_kind);
    tcase_add_test(tc, class_keys);
    tcase_add_test(tc, class_loss_key);
    tcase_add_test(tc, models_parse);
    tcase_add_test(tc, models_sizes);
    suite_add_tcase(s, tc);
    return tu_run(s) ? 1 : 0;
}
